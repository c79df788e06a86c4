/*
 * The leader's membership planner: which one Raft configuration change comes next.
 *
 * Inputs: every host of the replicated state and every server of the Raft configuration,
 * merged into struct cd_member. Rules, in order (the first that applies is the action):
 *   1. a server in the configuration whose host left the state is removed (never the
 *      leader itself);
 *   2. a host of the state missing from the configuration is added (as a spare);
 *   3. while fewer than the target live voters exist (3; 5 once the state has 7 or more
 *      hosts; never more than the hosts that can vote), an eligible (connected) standby is
 *      made a voter, else an eligible spare is made a standby (it catches up first);
 *   4. a voter that is dead (failed past the replacement threshold) is made a standby
 *      once the live voters reach the target without it (a standby, not a spare: the
 *      leader keeps sending it the log, so a host that comes back hears of the leader
 *      even when its own log is behind, and is promoted again once connected);
 *   5. more live voters than the target: one (not the leader, highest id first) becomes
 *      a standby (live voters, not all: a dead leader must not make the planner demote
 *      the standby it has just promoted);
 *   6. an eligible spare becomes a standby (ready to be promoted).
 * Hosts are taken in id order, so every leader plans the same way. Pure: no I/O.
 */
#ifndef CD_MEMBERS_H
#define CD_MEMBERS_H

#include <stdbool.h>
#include <stdint.h>

#define CD_VOTERS_SMALL		 3
#define CD_VOTERS_LARGE		 5
#define CD_VOTERS_LARGE_FROM	 7    /* hosts */
#define CD_VOTER_REPLACE_MS	 5000 /* a failed voter is replaced after this */

enum cd_member_kind { CD_MEMBER_NONE = 0, CD_MEMBER_ADD, CD_MEMBER_ASSIGN, CD_MEMBER_REMOVE };

struct cd_member {
	uint64_t id;
	int role;	/* RAFT_VOTER, RAFT_STANDBY, RAFT_SPARE; -1: not in the configuration */
	bool in_state;	/* a host of the state that has not left */
	bool eligible;	/* may be promoted: connected */
	bool dead;	/* failed for longer than CD_VOTER_REPLACE_MS */
};

struct cd_member_action {
	enum cd_member_kind kind;
	uint64_t id;
	int role; /* ASSIGN: the new role */
};

/* Plans the next change over m[0..n) (sorted by id) for leader self. */
void cd_members_plan(const struct cd_member *m, unsigned n, uint64_t self,
		     struct cd_member_action *out);

#endif
