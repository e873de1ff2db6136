/**
 * The ClusterTransport contract (test/support/transportRules.ts) on SimNats; the same rules
 * run on real nats-server in test/runtime/NatsTransport.test.ts, so the twins cannot drift.
 */
import { simTransportHarness, transportRules } from '../support/transportRules.js';

transportRules(() => simTransportHarness());
