/*
 * pq.h - libpq, loaded at run time.
 *
 * libpq brings OpenSSL, Kerberos, LDAP, GnuTLS and seventeen more libraries
 * with it. Job children never use them, but every child is forked from a
 * process image that would have them mapped, and pays for each mapping at
 * fork and again at exit (measured: 0.54 -> 0.82 ms of CPU per job, a third
 * of the throughput, with libpq linked in). So valetd is not linked against
 * libpq: the PostgreSQL store dlopen()s it when it starts - after the
 * spawner has been forked - and storage/ calls it through this table, like
 * api/mhd.h does for libmicrohttpd. Include this header after <libpq-fe.h>
 * in the storage files that call libpq.
 */
#ifndef VALET_PQ_H
#define VALET_PQ_H

#include <stddef.h>

#include <libpq-fe.h>

#define PQ_FUNCS(X)                                                                          \
	X(PQclear) X(PQcmdTuples) X(PQconninfoFree) X(PQconninfoParse) X(PQconnectPoll) X(PQconnectStart) X(PQconsumeInput)       \
	X(PQenterPipelineMode) X(PQerrorMessage) X(PQfinish) X(PQflush) X(PQfreemem)          \
	X(PQgetResult) X(PQgetisnull) X(PQgetvalue) X(PQhost) X(PQisBusy) X(PQnfields)        \
	X(PQnotifies) X(PQntuples) X(PQpipelineSync) X(PQresStatus) X(PQresultErrorField)    \
	X(PQresultErrorMessage) X(PQresultStatus) X(PQsendPrepare) X(PQsendQuery)           \
	X(PQsendQueryParams) X(PQsendQueryPrepared) X(PQsetNoticeReceiver)                   \
	X(PQsetnonblocking) X(PQsocket) X(PQstatus)

struct pq_api {
#define PQ_FIELD(name) __typeof__(name) *name;
	PQ_FUNCS(PQ_FIELD)
#undef PQ_FIELD
};

extern struct pq_api pq_api;

/* Load libpq once (idempotent). 0, or -ENOENT with a message in err. */
int pq_load(char *err, size_t errlen);

#ifndef VALET_PQ_IMPL
/* A macro is not expanded again inside its own expansion, so each of these
 * names the table's field. */
#define PQclear (*pq_api.PQclear)
#define PQcmdTuples (*pq_api.PQcmdTuples)
#define PQconninfoFree (*pq_api.PQconninfoFree)
#define PQconninfoParse (*pq_api.PQconninfoParse)
#define PQconnectPoll (*pq_api.PQconnectPoll)
#define PQconnectStart (*pq_api.PQconnectStart)
#define PQconsumeInput (*pq_api.PQconsumeInput)
#define PQenterPipelineMode (*pq_api.PQenterPipelineMode)
#define PQerrorMessage (*pq_api.PQerrorMessage)
#define PQfinish (*pq_api.PQfinish)
#define PQflush (*pq_api.PQflush)
#define PQfreemem (*pq_api.PQfreemem)
#define PQgetResult (*pq_api.PQgetResult)
#define PQgetisnull (*pq_api.PQgetisnull)
#define PQgetvalue (*pq_api.PQgetvalue)
#define PQhost (*pq_api.PQhost)
#define PQisBusy (*pq_api.PQisBusy)
#define PQnfields (*pq_api.PQnfields)
#define PQnotifies (*pq_api.PQnotifies)
#define PQntuples (*pq_api.PQntuples)
#define PQpipelineSync (*pq_api.PQpipelineSync)
#define PQresStatus (*pq_api.PQresStatus)
#define PQresultErrorField (*pq_api.PQresultErrorField)
#define PQresultErrorMessage (*pq_api.PQresultErrorMessage)
#define PQresultStatus (*pq_api.PQresultStatus)
#define PQsendPrepare (*pq_api.PQsendPrepare)
#define PQsendQuery (*pq_api.PQsendQuery)
#define PQsendQueryParams (*pq_api.PQsendQueryParams)
#define PQsendQueryPrepared (*pq_api.PQsendQueryPrepared)
#define PQsetNoticeReceiver (*pq_api.PQsetNoticeReceiver)
#define PQsetnonblocking (*pq_api.PQsetnonblocking)
#define PQsocket (*pq_api.PQsocket)
#define PQstatus (*pq_api.PQstatus)
#endif

#endif
