/**
 * The distribution rules (test/support/distributionRules.ts) on real NATS: a 3-server
 * nats-server cluster, in-process nodes each on its own client connection through a proxy
 * that can cut it off. The same rules run on SimNats in test/sim/DistributionRules.test.ts.
 */
import { natsHarness } from '../support/clusterHarness.js';
import { distributionRules } from '../support/distributionRules.js';

distributionRules(() => natsHarness());
