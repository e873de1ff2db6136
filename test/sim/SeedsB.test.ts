/** CI seed set, second half (see seedSet.ts): seeds 151..300, each run twice. */
import { seedSetTests } from './seedSet.js';

seedSetTests(151, 300);

/**
 * Seeds that once failed, kept as regressions: 0x1c2 found a failed group add (disk full)
 * left in the groups cache, so a retry read `already_member` and the member was gone after a
 * restart.
 */
seedSetTests(0x1c2, 0x1c2);
