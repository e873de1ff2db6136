/** CI cluster seed set, second half (see clusterSeedSet.ts): seeds 101..200, each run twice. */
import { clusterSeedSetTests } from './clusterSeedSet.js';

clusterSeedSetTests(101, 200);
