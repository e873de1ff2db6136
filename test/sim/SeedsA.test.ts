/** CI seed set, first half (see seedSet.ts): seeds 1..150, each run twice. */
import { seedSetTests } from './seedSet.js';

seedSetTests(1, 150);
