/** CI cluster seed set, first half (see clusterSeedSet.ts): seeds 1..100, each run twice. */
import { clusterSeedSetTests } from './clusterSeedSet.js';

clusterSeedSetTests(1, 100);
