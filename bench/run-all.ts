/** npm run bench: every bench script, one after another, in this process. */
import { dgOverhead } from './dg-overhead.js';
import { discTrain } from './disc-train.js';
import { galleryQuery } from './gallery-query.js';
import { gradCost } from './grad-cost.js';
import { samplerOverhead } from './sampler-overhead.js';
import { samplerNfe } from './sampler-nfe.js';
import { unetCosts } from './unet-costs.js';
import { scoreTrain } from './score-train.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

console.log(
  `# DG Studio benchmarks — ${new Date().toISOString()} — node ${process.version}, ${(await import('node:os')).cpus().length} cores`,
);
console.log('\n## sampler-overhead');
await samplerOverhead();
console.log('\n## sampler-nfe (quality per network evaluation, 2-D mixture toy)');
await samplerNfe();
console.log('\n## grad-cost');
await gradCost();
console.log('\n## dg-overhead');
await dgOverhead();
console.log('\n## disc-train (60 s per configuration)');
await discTrain(60);
console.log('\n## gallery-query (100k outputs)');
await galleryQuery();
console.log("\n## unet-costs (a real U-Net: ORT vs PyTorch CPU, and each discriminator design's DG overhead)");
const unet = join(import.meta.dirname, '..', '.cache', 'unet-bench', 'manifest.json');
if (existsSync(unet)) await unetCosts(unet);
else console.log(`no U-Net at ${unet}: make one as the top of bench/unet-costs.ts says (needs python3-torch), then rerun`);
console.log("\n## score-train (the app's U-Net trainer vs PyTorch on CPU, batch 32)");
await scoreTrain();
console.log(`\npeak RSS of the whole run: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
