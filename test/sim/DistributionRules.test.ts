/**
 * The distribution rules (test/support/distributionRules.ts) on SimNats in virtual time, the
 * simulator's twin of the NATS transport; test/runtime/DistributionRules.test.ts runs the same
 * rules on real nats-server processes.
 */
import { simHarness } from '../support/clusterHarness.js';
import { distributionRules } from '../support/distributionRules.js';

distributionRules(() => simHarness());
