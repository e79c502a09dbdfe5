/** npm run bench: every bench script, one after another, in this process. */
import { dgOverhead } from './dg-overhead.js';
import { discTrain } from './disc-train.js';
import { galleryQuery } from './gallery-query.js';
import { gradCost } from './grad-cost.js';
import { samplerOverhead } from './sampler-overhead.js';

console.log(
  `# DG Studio benchmarks — ${new Date().toISOString()} — node ${process.version}, ${(await import('node:os')).cpus().length} cores`,
);
console.log('\n## sampler-overhead');
await samplerOverhead();
console.log('\n## grad-cost');
await gradCost();
console.log('\n## dg-overhead');
await dgOverhead();
console.log('\n## disc-train (60 s per configuration)');
await discTrain(60);
console.log('\n## gallery-query (100k outputs)');
await galleryQuery();
console.log(`\npeak RSS of the whole run: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
console.log('\n## ORT vs PyTorch CPU: skipped — python3-torch is not installed on this machine (apt-get install python3-torch)');
