/**
 * Exit codes of the `iris` command, the same for every subcommand, so scripts can tell a
 * mistake in the command line from a node that is down and from a node that said no.
 */

/** Done. */
export const EXIT_OK = 0;
/** The node could not start, could not be reached, or failed (an answer 5xx: storage, timeout); a message says why. */
export const EXIT_FAILURE = 1;
/** Bad flags or configuration: the message names the flag or key and the fix. */
export const EXIT_USAGE = 2;
/** The node answered and refused the request; the message starts with its error code. */
export const EXIT_REFUSED = 3;
