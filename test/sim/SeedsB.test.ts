/** CI seed set, second half (see seedSet.ts): seeds 151..300, each run twice. */
import { seedSetTests } from './seedSet.js';

seedSetTests(151, 300);
