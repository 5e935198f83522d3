/* store/ private: what store's own files share. The SQLite handle stays
 * behind this header; nothing outside store/ sees it. */
#ifndef CRL_STORE_INTERNAL_H
#define CRL_STORE_INTERNAL_H

#include <sqlite3.h>

#include "crl/store.h"

/* The store's connection (NULL for a NULL store). */
sqlite3 *crl_store_sqlite(crl_store *s);
/* The file the store was opened on ("" for NULL). */
const char *crl_store_path(const crl_store *s);
/* A failed sqlite3 call rc as a crl status with a message naming the file
 * (store.c's error mapping: CRL_EBUSY, CRL_ECORRUPT, CRL_EIO, ...). */
int crl_store_fail(crl_store *s, crl_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prepare sql on s into *st (NULL on failure); what names the read in the
 * error. */
int crl_store_prepare(crl_store *s, const char *sql, sqlite3_stmt **st, const char *what,
                      crl_err *err);
/* Column col as text into dst (cap bytes; NULL reads as ""). */
void crl_store_column_text(char *dst, size_t cap, sqlite3_stmt *st, int col);
/* Column col as a double; NULL (how SQLite stores NaN) reads back as NaN. */
double crl_store_column_real(sqlite3_stmt *st, int col);

/* Refuse files SQLite would take for an empty database but are not (it
 * treats some very short files as empty and would overwrite them): a real
 * database is empty or at least one 512-byte page starting with the magic
 * string. CRL_ECORRUPT "PATH is not a KIND (not SQLite)"; CRL_EIO. */
int crl_store_check_magic(const char *path, const char *kind, crl_err *err);
/* The busy timeout: CRL_BUSY_TIMEOUT_MS when set (CRL_EINVAL if it is not a
 * number of milliseconds), else the default. */
int crl_store_busy_timeout_ms(int *out, crl_err *err);
/* Before creating a file at path: its folder exists, is a folder, and this
 * process can write there; else CRL_EIO with one line "cannot create WHAT
 * PATH: ..." naming the OS reason (e.g. Read-only file system). */
int crl_store_check_parent_dir(const char *path, const char *what, crl_err *err);

/* Open and configure a crl file's connection (store.c's rules; kind names
 * the file in errors). *db may be set on failure: the caller closes it. */
int crl_store_sqlite_open(const char *path, const char *kind, int flags, int busy_ms,
                          sqlite3 **db, crl_err *err);

#endif
