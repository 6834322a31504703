/*
 * job.h - the domain objects: jobs, pipelines, their statuses, results and
 * outcomes. Shared by the core, the storage adapters and the API.
 *
 * Jobs and pipelines are reference counted: the memory store, the queue and
 * a running child each hold a reference, so an object lives as long as
 * anyone still looks at it. A pipeline holds references to its jobs; a job
 * names its pipeline by id only (no reference cycle).
 *
 * They carry no fields of the storage adapters: an adapter keeps its own
 * bookkeeping (the memory store's creation order, the PostgreSQL store's
 * unsaved changes) beside them, keyed by id (supervisor/idmap.h).
 *
 * Times are microseconds since the Unix epoch (UTC); 0 means "not set".
 * Ids are UUIDv4, kept as 16 bytes and formatted on output.
 */
#ifndef VALET_JOB_H
#define VALET_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#define JOB_ID_LEN 16
#define JOB_ID_STRLEN 36 /* without the NUL */

enum job_status {
	JOB_UNDEFINED = 0,
	JOB_PENDING = 1,
	JOB_SCHEDULED = 2,
	JOB_IN_PROGRESS = 3,
	JOB_COMPLETED = 4,
	JOB_FAILED = 5,
	JOB_CANCELLED = 6,
};
#define JOB_STATUS_MAX JOB_CANCELLED
#define JOB_MAX_ATTEMPTS 100

/* How the child ended, decided by the supervisor (never by the child).
 * Kept small: 100,000 queued jobs must fit in a few tens of MB. */
struct job_outcome {
	int32_t pid;        /* 0 when no child ran */
	int32_t exit_code;  /* -1 when the child did not exit normally */
	int32_t term_signal; /* 0 when not killed by a signal */
	int32_t cpu_ms;     /* user+system CPU of the child; -1 when unknown */
	int32_t wall_ms;    /* job start -> end; -1 when unknown */
	int32_t max_rss_kb; /* peak resident set of its largest process; -1 when unknown */
	int32_t memory_peak_kb; /* peak memory of its cgroup (all its processes, page
				 * cache, its /tmp); -1 when unknown (no cgroup) */
	bool timed_out : 1;     /* we killed it at its deadline */
	bool cancelled : 1;     /* we killed it because of a cancel/shutdown */
	bool output_limit : 1;  /* we killed it for too much output */
	bool oom_killed : 1;
	bool seccomp_blocked : 1;
	uint8_t failure_class;	/* enum metrics_failure: why the attempt failed (not stored) */
	const char *seccomp_syscall; /* interned name of the blocked call; NULL unknown */
};

/*
 * A job's resource limits (the API's "limits"). A job whose request set
 * limits carries them all, resolved when it was created (the request's
 * value, else its task's default, else the global default) and stored with
 * it, so it runs with them on whichever node claims it; set is false for
 * the others, which get the defaults of the node that runs them. 0 means
 * no limit for memory, cpu and processes. 24 bytes.
 */
struct job_limits {
	uint64_t memory_bytes; /* RLIMIT_AS; 0 = none */
	uint32_t cpu_seconds;  /* RLIMIT_CPU; 0 = none */
	uint32_t processes;    /* RLIMIT_NPROC; 0 = none (left as it is) */
	uint32_t output_bytes; /* stdout+stderr cap; > 0 (at most 1 GiB) */
	bool set;
};

/*
 * Fields are grouped by alignment (8, 4, 2, 1 bytes) so that there are no
 * padding holes: 100,000 queued jobs. 280 bytes, a 288-byte malloc chunk.
 */
struct job {
	char *name;	       /* never NULL */
	char *description;     /* NULL when absent */
	const char *task_name; /* never NULL; interned (job_intern), not owned */
	char *params_json;     /* compact JSON object text; NULL when absent or {} */
	int64_t timeout_ms;    /* > 0 */
	char *failure_reason;  /* NULL unless FAILED/CANCELLED */
	int64_t run_at, scheduled_at, created_at, started_at, completed_at;

	/* The result, stored together with the final status. */
	char *result_json;  /* the task's return value as JSON text; NULL for null */
	char *result_error; /* the failure text; NULL when none */

	struct job_outcome outcome;
	struct job_limits limits;
	/* How the current (or last) run was isolated: a JSON object text, set
	 * when the job starts; NULL until then. Output verbatim. */
	char *isolation;

	/* Owned by the core while the job is queued/scheduled/running. */
	struct pipeline *pipeline; /* borrowed; set while active */
	TAILQ_ENTRY(job) core_link;
	int64_t core_due; /* core.c: when it is due in the heap (run_at, or a retry) */

	unsigned refs;
	enum job_status status;
	int pipeline_index;	  /* its place in its pipeline */
	uint32_t core_heap_index; /* queue.c */

	/* Runs so far (the current one included once it started), and how many
	 * are allowed (retries: max_attempts - 1; at most JOB_MAX_ATTEMPTS). */
	int16_t attempt, max_attempts;

	uint8_t id[JOB_ID_LEN];
	/* Pipeline membership (all zero for a standalone job). */
	uint8_t pipeline_id[JOB_ID_LEN];
	uint8_t next_job_id[JOB_ID_LEN];
	bool in_pipeline : 1;
	bool has_next : 1;
	bool use_previous_results : 1;
	bool has_result : 1;	/* the result is set (stored with the final status) */
	uint8_t core_where : 4; /* core.c: enum core_where */
	/* Changes whenever result_json is replaced or freed: an answer that
	 * streams the text from a reference to the job checks it. */
	uint8_t result_gen;
	/* Who made it: job_owner_id() of an API key's name; 0 for nobody (an
	 * open API). Two bytes where the struct had padding. */
	uint16_t owner;
};

struct pipeline {
	unsigned refs;
	uint16_t owner; /* as a job's owner; its jobs have the same */
	uint8_t id[JOB_ID_LEN];
	char *name;
	char *description;
	enum job_status status;
	char *failure_reason;
	int64_t run_at, created_at, started_at, completed_at;
	size_t njobs;
	struct job **jobs; /* references, in pipeline order */
};

/* Field masks for store save calls: what changed. */
enum {
	JOB_F_STATUS = 1u << 0,      /* status, failure_reason, timestamps */
	JOB_F_META = 1u << 1,        /* name, description (PATCH) */
	JOB_F_RESULT = 1u << 2,      /* result (with the final status) */
	JOB_F_OUTCOME = 1u << 3,
	/* An attempt failed and the job waits for its next one (status
	 * PENDING, failure_reason says why, core_due says when): the store
	 * records the failed attempt with its outcome. */
	JOB_F_RETRY = 1u << 4,
};

/* Constructors take nothing from the caller; fields are filled in after. */
struct job *job_new(void);
/* The value of a hex digit (either case), or -1. */
int job_hex_value(char c);

struct job *job_ref(struct job *job);
void job_unref(struct job *job); /* NULL is a no-op */
struct pipeline *pipeline_new(size_t njobs);
struct pipeline *pipeline_ref(struct pipeline *pl);
void pipeline_unref(struct pipeline *pl);

/* A copy of s that lives as long as the process, shared by all callers that
 * pass an equal string (task names, syscall names: a small, bounded set).
 * NULL on ENOMEM. */
const char *job_intern(const char *s);

/*
 * Owners: the names of the API keys that made jobs, each a small number so
 * that a job keeps it in two bytes. job_owner_id() gives name's number
 * (1..65535, the same for an equal name for the life of the process; a
 * name is never forgotten, so work keeps its owner after its key is
 * revoked), or 0 for NULL or "", on ENOMEM and once 65535 names are taken
 * (work of owner 0 is nobody's: only a view of everything shows it).
 * job_owner_name(): the name of a number, borrowed for the process's
 * life; NULL for 0 or an unknown number.
 */
uint16_t job_owner_id(const char *name);
const char *job_owner_name(uint16_t id);

/* Set a string field: frees the old value, stores a copy (or NULL). */
void job_set_str(char **field, const char *value);

bool job_status_final(enum job_status s);
const char *job_status_name(enum job_status s); /* "PENDING", ... */
/* Case-insensitive; returns JOB_UNDEFINED for an unknown name. */
enum job_status job_status_parse(const char *name);

/* UUIDv4 ids. */
void job_id_generate(uint8_t id[JOB_ID_LEN]);
void job_id_format(const uint8_t id[JOB_ID_LEN], char out[JOB_ID_STRLEN + 1]);
/* Strict: 36 chars, hex with hyphens at 8-13-18-23; any case. 0 or -EINVAL. */
int job_id_parse(const char *s, uint8_t id[JOB_ID_LEN]);

/* Clocks. */
int64_t job_now_us(void);  /* CLOCK_REALTIME */
int64_t job_mono_ns(void); /* CLOCK_MONOTONIC */
/*
 * The times valet takes from clients: 0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999999Z, as instants in UTC. Within them RFC 3339
 * has its four-digit year, PostgreSQL's timestamptz and the memory store
 * agree, and job_time_parse(job_time_format(t)) == t.
 */
#define JOB_TIME_MIN_US (-INT64_C(62135596800000000))
#define JOB_TIME_MAX_US INT64_C(253402300799999999)

/* RFC 3339 UTC, 'Z', fraction trimmed of trailing zeros. out >= 32 bytes.
 * Outside JOB_TIME_MIN_US..JOB_TIME_MAX_US the year is not four digits. */
void job_time_format(int64_t us, char *out, size_t outlen);
/* RFC 3339 with a required zone (Z or +hh:mm); fraction 1-9 digits.
 * Returns 0 and *us, -EINVAL for a malformed string, or -ERANGE for one
 * whose instant is outside JOB_TIME_MIN_US..JOB_TIME_MAX_US (such as
 * 0000-01-01T00:00:00Z, or 9999-12-31T23:00:00-02:00, which is in the
 * year 10000 in UTC); *us is set only on success. */
int job_time_parse(const char *s, int64_t *us);

/* Duration in whole ms of a COMPLETED/FAILED job or pipeline, -1 otherwise. */
int64_t job_span_ms(enum job_status status, int64_t started_at, int64_t completed_at);
int64_t job_duration_ms(const struct job *job);

#endif
