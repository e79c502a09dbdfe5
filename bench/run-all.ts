/** npm run bench: every bench script, one after another, in this process. */
import { gradCost } from './grad-cost.js';
import { samplerOverhead } from './sampler-overhead.js';

console.log(
  `# DG Studio benchmarks — ${new Date().toISOString()} — node ${process.version}, ${(await import('node:os')).cpus().length} cores`,
);
console.log('\n## sampler-overhead');
await samplerOverhead();
console.log('\n## grad-cost');
await gradCost();
