/**
 * The StreamStore contract (test/support/streamRules.ts, the rules JetStreamStore passes on real
 * nats-server 2.9.10) on the simulator's JetStream model in virtual time, with the model's
 * switch for 2.9.10's racy subject-sequence check on (the real server races in nearly every
 * round of the rules).
 */
import { simStreamHarness, streamRules } from '../support/streamRules.js';

streamRules(() => simStreamHarness(7));
