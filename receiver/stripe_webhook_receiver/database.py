"""The two databases the receiver runs on, behind one way to run a unit of work.

A unit of work is a plain function that takes a `Transaction` and runs SQL written with `?`
placeholders; the database runs it inside a transaction and hands back its result.

SQLite (the default, one replica): units queue up on the event loop and a committer task
runs them in groups, one transaction per group, each unit inside its own savepoint (one
failing unit rolls back alone). One commit, one fsync of the WAL in a worker thread, makes
the whole group durable before any of its callers answers; requests arriving meanwhile form
the next group. Under load this amortises the fsync over many requests; at one request at a
time it costs nothing extra.

PostgreSQL (several replicas): the same group commit, per replica. Units queue up on the event
loop; a committer task hands each group to one of PG_LANES worker threads, which runs it on
its own pooled connection as one transaction (optimistic first, then one savepoint per unit if
a unit fails), so a group of deliveries pays one BEGIN, one COMMIT and one wait for the WAL
flush instead of one each. The optimistic pass sends each of the group's transactions as one
query (`_Batch`): a statement whose answer its unit does not need at once
(`Transaction.execute_later`) waits in the batch, and the commit sends it with the others, so
a group of deliveries costs two round trips in all (the records, then the processing: one
statement per delivery, see `store`) instead of four per delivery. A few groups run at once,
each on its own lane: while one waits for the server, the next forms and starts. A transaction
per unit (the server's own group commit of concurrent backends) costs two more round trips and
a thread hop per unit, and on a durable server (`fsync=on`) each unit then waits for a WAL
flush of its own or a neighbour's. Groups of different replicas touch the same rows in any
order; a group that loses a deadlock, or one of whose batched statements failed (the query
stops there, and which unit the statement belongs to is not known), is run again one
statement at a time with a savepoint per unit, and only a unit that still fails is answered
with its error. Only a lost connection fails the whole group at once.

`run_sync` runs one unit in a transaction of its own.

Units must touch nothing but the database, since a group may run them twice (see
`_run_group`). A unit run with `durable=False` commits without waiting for the disk (SQLite:
a group with only such units commits with `synchronous = NORMAL`; PostgreSQL:
`synchronous_commit = off` for that transaction). Both logs are sequential, so the next
durable commit makes it durable too.

`run_pair(first, then)` runs two units as two transactions, one after the other: `first`
commits without waiting for the disk, then `then` runs with its result and commits durably.
The receiver records a delivery that way and then processes it: the record is committed, in
its own transaction, before the processing starts, a request pays for one flush to disk
instead of two, and for one trip through the committer instead of two (on SQLite a group
runs every pair's first unit in one transaction and every pair's second unit in the next).
If the machine loses power between the two commits, both are lost and no answer was sent,
which is the same as a delivery that never arrived: Stripe sends it again.

Any failure to reach, read or write the database (down, read-only, disk full, I/O error)
becomes `DatabaseUnavailable`, which the HTTP layer answers with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import psycopg

T = TypeVar("T")
A = TypeVar("A")
MAX_GROUP = 256
PG_POOL_SIZE = 8
# Commit groups in flight at once per replica (each holds one pooled connection).
PG_LANES = 4
PG_CONNECT_TIMEOUT = 5
# Seconds shutdown waits for queued units (uvicorn has already finished in-flight requests).
CLOSE_TIMEOUT = 10.0


class DatabaseUnavailable(Exception):
    """The database cannot be reached, read or written right now; retrying later may work."""


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Later(Generic[T]):
    """A unit's result that is read from a statement's answer once the group has sent all of
    its statements (see `Transaction.execute_later`)."""

    __slots__ = ("_read",)

    def __init__(self, read: Callable[[], T]) -> None:
        self._read = read

    def get(self) -> T:
        return self._read()


def _now(value: T) -> Later[T]:
    return Later(lambda: value)


class Transaction:
    """The SQL interface a unit of work sees: `execute` with `?` placeholders.

    On PostgreSQL a commit group's optimistic pass sends each transaction as one query (see
    `_Batch`): `execute_later` adds a statement to it and returns a `Later` of its answer;
    `execute` sends what has been added so far, with its own statement, and waits, as its
    caller may read the row count or rows at once.
    """

    def __init__(self, connection: Any, dialect: str, batch: _Batch | None = None) -> None:
        self._connection = connection
        self.dialect = dialect
        self._batch = batch

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement; `?` marks each parameter whatever the database."""
        if self._batch is not None:
            answer = self._batch.add(self._sql(sql), params, _Answer.of)
            self._batch.send()
            result: Cursor = answer.get()
            return result
        cursor: Cursor = self._connection.execute(self._sql(sql), params)
        return cursor

    def execute_later(
        self, sql: str, params: Sequence[Any], read: Callable[[Cursor], T]
    ) -> Later[T]:
        """Run one statement and return `read` of its cursor once it is answered.

        A unit that returns the `Later` lets the group send its statement with the others;
        the database hands the unit's caller `read`'s value."""
        if self._batch is not None:
            return self._batch.add_prepared(self._sql(sql), params, read)
        return _now(read(self._connection.execute(self._sql(sql), params)))

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT of one row into a table keyed by an `id` column; return its id."""
        return self.insert_later(sql, params).get()

    def insert_later(self, sql: str, params: Sequence[Any] = ()) -> Later[int]:
        """`insert`, its id read once the statement is answered (see `execute_later`)."""
        if self.dialect == "postgresql":
            return self.execute_later(sql + " RETURNING id", params, _first_int)
        # SQLite knows the id of the row it just inserted; `RETURNING id` would make it step
        # through a result row as well, which costs more than the INSERT's own bookkeeping.
        cursor: sqlite3.Cursor = self._connection.execute(sql, params)
        assert cursor.lastrowid is not None
        return _now(cursor.lastrowid)


@dataclass
class _Answer:
    """What one statement of a batch answered, kept once the batch's cursor moves on."""

    rowcount: int
    rows: list[Any]

    @classmethod
    def of(cls, cursor: Cursor) -> _Answer:
        described = getattr(cursor, "description", None) is not None
        return cls(cursor.rowcount, cursor.fetchall() if described else [])

    def fetchone(self) -> Any:
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list[Any]:
        rows, self.rows = self.rows, []
        return rows


class _Batch:
    """The statements of one PostgreSQL transaction, sent together as one query.

    psycopg costs ~100 us of CPU per statement it sends and answers (its protocol code is
    Python; in pipeline mode more, not less), in the worker thread that shares the event
    loop's core: a group of one delivery cost ~1 ms. Here the parameters are bound on the
    client by psycopg's own literal quoting (`ClientCursor.mogrify`, with the connection's
    encoding), the statements joined and sent in one simple query, and each answer read
    from its result set in order: one round trip and ~0.1 ms for a whole transaction. The
    first failing statement ends the query; its error is raised by `send`.

    A statement sent this way is parsed and planned by the server each time, which for the
    processing statement costs more than psycopg saves; the statements a group sends for
    each delivery (`add_prepared`) are prepared once per connection and sent as `EXECUTE`.
    """

    def __init__(self, connection: psycopg.Connection[Any], prepared: set[str]) -> None:
        self._cursor = psycopg.ClientCursor(connection)
        self._prepared = prepared
        self._statements: list[str] = []
        self._reads: list[tuple[Callable[[Cursor], Any], list[Any]] | None] = []

    def add_prepared(self, sql: str, params: Sequence[Any], read: Any) -> Later[Any]:
        """`add` a statement the server holds prepared on this connection (from its first
        use on: PREPARE outlives a rollback, so it is run at once, on its own)."""
        name = _statement_name(sql)
        if name not in self._prepared:
            self._cursor.execute(f"PREPARE {name} AS {_numbered(sql)}")
            self._prepared.add(name)
        arguments = f"({', '.join('%s' for _ in params)})" if params else ""
        return self.add(f"EXECUTE {name}{arguments}", params, read)

    def add(self, sql: str, params: Sequence[Any] = (), read: Any = None) -> Later[Any]:
        """Queue one statement; the `Later` gives `read` of its answer once it is sent."""
        self._statements.append(self._cursor.mogrify(sql, params) if params else sql)
        if read is None:
            self._reads.append(None)
            return _now(None)
        slot: list[Any] = []
        self._reads.append((read, slot))
        return Later(lambda: slot[0])

    def send(self) -> None:
        """Send the queued statements as one query and read every answer."""
        statements, reads = self._statements, self._reads
        self._statements, self._reads = [], []
        self._cursor.execute(";\n".join(statements))
        for index, entry in enumerate(reads):
            if index:
                self._cursor.nextset()
            if entry is not None:
                read, slot = entry
                slot.append(read(self._cursor))


@functools.lru_cache(maxsize=64)
def _statement_name(sql: str) -> str:
    """The name a statement is prepared under, the same on every connection."""
    return "swr_" + hashlib.sha256(sql.encode()).hexdigest()[:16]


def _numbered(sql: str) -> str:
    """`sql` with its `%s` placeholders numbered as PREPARE wants them: $1, $2, ..."""
    parts = sql.split("%s")
    return parts[0] + "".join(f"${index}{part}" for index, part in enumerate(parts[1:], 1))


def _lost(connection: psycopg.Connection[Any]) -> bool:
    """Whether the connection is gone (the server ended it, or psycopg closed it)."""
    return connection.broken or connection.closed


def _first_int(cursor: Cursor) -> int:
    return int(cursor.fetchone()[0])


# A unit's result, or a `Later` that gives it once the group's statements are answered.
Unit = Callable[[Transaction], "T | Later[T]"]
# The second unit of a pair: it also gets the first unit's result.
Then = Callable[[Transaction, A], "T | Later[T]"]


def _value(result: T | Later[T]) -> T:
    return result.get() if isinstance(result, Later) else result


def _sqlite_unavailable(exc: sqlite3.Error) -> bool:
    """Errors of the file or the disk, as opposed to errors in our own SQL."""
    return not isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError)


def _postgres_unavailable(exc: psycopg.Error) -> bool:
    return isinstance(
        exc, psycopg.OperationalError | psycopg.InternalError | psycopg.InterfaceError
    )


class Database(Protocol):
    dialect: str

    async def run(self, unit: Unit[T], *, durable: bool = True) -> T: ...

    async def run_pair(self, first: Unit[A], then: Then[A, T]) -> T: ...

    def run_sync(self, unit: Unit[T]) -> T: ...

    async def aclose(self) -> None: ...

    def close(self) -> None: ...


def sqlite_path(url: str) -> Path:
    """Return the file of a `sqlite:///relative` or `sqlite:////absolute` URL."""
    path = url.removeprefix("sqlite://")
    if not path.startswith("/") or len(path) < 2:
        raise ValueError(
            "An SQLite database URL must look like 'sqlite:////absolute/file.db' or "
            "'sqlite:///relative/file.db'."
        )
    return Path(path[1:])


@dataclass
class _Job:
    """A unit, or a pair of units, waiting for the next commit group."""

    first: Unit[Any]
    then: Then[Any, Any] | None
    future: asyncio.Future[Any]
    durable: bool


class _Flusher:
    """One thread that runs the blocking part of each commit group off the event loop: the
    durable commits (their fsync) on SQLite, the whole group on PostgreSQL.

    `loop.run_in_executor` costs about three times the CPU per call of this queue and
    `call_soon_threadsafe` (a concurrent.futures Future with its condition variable, the
    pool's bookkeeping, a second future chained to it); each commit group pays it once, and
    groups are small at low load. Like the pool's threads, this one is a daemon: it never
    holds up the interpreter's exit, and a commit cut short there was answered to no one.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[_FlushWork | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, function: Callable[[Any], Any], argument: Any) -> asyncio.Future[Any]:
        """Call `function(argument)` in the thread; the future gets its result or error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._queue.put(_FlushWork(function, argument, loop, future))
        return future

    def _serve(self) -> None:
        while (work := self._queue.get()) is not None:
            try:
                result = work.function(work.argument)
            except Exception as exc:
                outcome: tuple[Any, BaseException | None] = (None, exc)
            else:
                outcome = (result, None)
            # A loop closed meanwhile has no one left to answer.
            with contextlib.suppress(RuntimeError):
                work.loop.call_soon_threadsafe(_settle, work.future, *outcome)

    def stop(self) -> None:
        """Let the queued work finish, then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


@dataclass
class _FlushWork:
    function: Callable[[Any], Any]
    argument: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # its waiter was cancelled
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _GroupQueue:
    """What both databases share: units submitted on the event loop wait in a queue for the
    next commit group, which each database's `_commit_loop` task forms and runs."""

    _committer_name = "committer"

    def __init__(self) -> None:
        self._pending: list[_Job] = []
        self._wakeup: asyncio.Event | None = None
        self._committer: asyncio.Task[None] | None = None
        self._closing = False

    async def run(self, unit: Unit[T], *, durable: bool = True) -> T:
        """Run `unit` in the next commit group; return once that group has committed (and,
        unless `durable` is false, is on disk)."""
        return await self._submit(unit, None, durable)

    async def run_pair(self, first: Unit[A], then: Then[A, T]) -> T:
        """Commit `first` (not waiting for the disk), then run `then` with its result in a
        second transaction; return once that one is on disk (see the module docstring)."""
        return await self._submit(first, then, True)

    async def _submit(self, first: Unit[Any], then: Then[Any, T] | None, durable: bool) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Job(first, then, future, durable))
        if self._committer is None or self._committer.done():
            self._wakeup = asyncio.Event()
            self._committer = loop.create_task(self._commit_loop(), name=self._committer_name)
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _commit_loop(self) -> None:
        raise NotImplementedError

    async def _stop_committer(self) -> None:
        """Let the queued and running groups finish, then stop the committer."""
        if self._committer is not None and self._wakeup is not None:
            self._closing = True
            self._wakeup.set()
            # On a timeout, wait_for cancels the committer.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._committer, CLOSE_TIMEOUT)


class SqliteDatabase(_GroupQueue):
    """An SQLite file in WAL mode whose units run in groups, each group one commit."""

    dialect = "sqlite"
    _committer_name = "sqlite-committer"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._durable = True
        # Held while the connection is in use: by the committer (across the commit it hands
        # to the worker thread) or by `run_sync`.
        self._lock = threading.Lock()
        self._flusher = _Flusher("sqlite-commit")

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                # The file belongs to this one process; waiting long for another writer would
                # stall the event loop, so give up soon and answer 503.
                connection.execute("PRAGMA busy_timeout = 1000")
                connection.execute("PRAGMA journal_mode = WAL")
                # FULL: each durable commit is fsynced, so a 2xx is only sent for a stored event.
                connection.execute("PRAGMA synchronous = FULL")
                self._durable = True
            except sqlite3.Error:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None

    async def _commit_loop(self) -> None:
        # Units run here, on the event loop, and take microseconds; only the commit's fsync
        # goes to the worker thread. Whatever arrives while one group is being flushed forms
        # the next group: that is the group commit. One thread touching Python objects at a
        # time also spares the interpreter lock the hand-offs a writer thread would cost.
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group = self._pending[:MAX_GROUP]
                del self._pending[:MAX_GROUP]
                await self._run_group(group)
            if self._closing:
                return

    async def _run_group(self, submitted: list[_Job]) -> None:
        # A caller that gave up (its task was cancelled) is skipped, never answered twice.
        group = [job for job in submitted if not job.future.done()]
        if not group:
            return
        with self._lock:
            try:
                connection = self._connect()
                # The pairs' first units commit without a flush of their own: the second
                # transaction's flush covers them, as the WAL is written in order.
                durable = any(job.durable for job in group if job.then is None)
                firsts = await self._transaction(connection, [job.first for job in group], durable)
                # Singles are answered now, and so are pairs whose first unit failed (their
                # second never runs); the other pairs go on to the second transaction.
                answered: list[tuple[_Job, tuple[bool, Any]]] = []
                seconds: list[tuple[_Job, Unit[Any]]] = []
                for job, (ok, value) in zip(group, firsts, strict=True):
                    if job.then is None or not ok:
                        answered.append((job, (ok, value)))
                    elif not job.future.done():
                        seconds.append((job, _bind(job.then, value)))
                _answer(answered)
                if seconds:
                    results = await self._transaction(
                        connection,
                        [unit for _, unit in seconds],
                        any(j.durable for j, _ in seconds),
                    )
                    _answer(
                        [(job, result) for (job, _), result in zip(seconds, results, strict=True)]
                    )
            except sqlite3.Error as exc:
                self._abandon()
                failure = _translate_sqlite(exc)
                for job in group:
                    if not job.future.done():
                        job.future.set_exception(failure)

    async def _transaction(
        self, connection: sqlite3.Connection, units: list[Unit[Any]], durable: bool
    ) -> list[tuple[bool, Any]]:
        """Run `units` in one transaction and commit it; return each unit's (ok, value)."""
        if durable != self._durable:
            connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        connection.execute("BEGIN IMMEDIATE")
        tx = Transaction(connection, self.dialect)
        # Optimistic first: units rarely fail, and savepoints cost two statements per unit.
        # If one fails, roll the transaction back and run it again with a savepoint per unit,
        # so that only the failing unit's writes are undone.
        results = [_run_unit(tx, unit, False) for unit in units]
        if not all(ok for ok, _ in results):
            connection.execute("ROLLBACK")
            connection.execute("BEGIN IMMEDIATE")
            results = [_run_unit(tx, unit, True) for unit in units]
        if durable:
            await self._flusher.run(connection.execute, "COMMIT")
        else:
            connection.execute("COMMIT")
        return [(ok, _value(value)) for ok, value in results]

    def _abandon(self) -> None:
        if self._connection is not None and self._connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._connection.execute("ROLLBACK")
        # A failed open or commit may leave the connection unusable: start afresh next time.
        self._drop_connection()

    def run_sync(self, unit: Unit[T]) -> T:
        """Run `unit` from a thread that has no event loop (the `migrate` command, tests)."""
        with self._lock:
            try:
                connection = self._connect()
                connection.execute("BEGIN IMMEDIATE")
                ok, value = _run_unit(Transaction(connection, self.dialect), unit, False)
                connection.execute("COMMIT" if ok else "ROLLBACK")
            except sqlite3.Error as exc:
                self._abandon()
                raise _translate_sqlite(exc) from None
        if not ok:
            raise value
        result: T = _value(value)
        return result

    async def aclose(self) -> None:
        """Let the queued and running groups finish, stop the committer, close the file."""
        await self._stop_committer()
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Close the connection and the worker thread."""
        with self._lock:
            self._drop_connection()
        self._flusher.stop()


def _bind(then: Then[A, T], value: A) -> Unit[T]:
    """Return the unit that runs `then` with the first unit's result."""
    return lambda tx: then(tx, value)


def _answer(outcomes: list[tuple[_Job, tuple[bool, Any]]]) -> None:
    """Hand each job its unit's result or exception (unless its caller has given up)."""
    for job, (ok, value) in outcomes:
        if job.future.done():
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)


def _run_unit(tx: Transaction, unit: Unit[Any], savepoint: bool = True) -> tuple[bool, Any]:
    """Run one unit, in a savepoint of its own so that its failure rolls back only itself."""
    if savepoint:
        tx.execute("SAVEPOINT unit")
    try:
        value = unit(tx)
    except Exception as exc:
        if savepoint:
            tx.execute("ROLLBACK TO unit")
            tx.execute("RELEASE unit")
        return False, _translate(exc)
    if savepoint:
        tx.execute("RELEASE unit")
    return True, value


def _translate_sqlite(exc: sqlite3.Error) -> BaseException:
    if _sqlite_unavailable(exc):
        return DatabaseUnavailable(f"SQLite database error: {type(exc).__name__}: {exc}")
    return exc


def _translate_postgres(exc: psycopg.Error) -> BaseException:
    if _postgres_unavailable(exc):
        return DatabaseUnavailable(f"PostgreSQL error: {type(exc).__name__}: {exc}")
    return exc


def _translate(exc: Exception) -> BaseException:
    """A unit's database error as the caller sees it; its own exceptions unchanged."""
    if isinstance(exc, sqlite3.Error):
        return _translate_sqlite(exc)
    if isinstance(exc, psycopg.Error):
        return _translate_postgres(exc)
    return exc


class _UnitFailed(Exception):
    """Ends a group's optimistic transaction when one of its units failed with `error`."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class PostgresDatabase(_GroupQueue):
    """A PostgreSQL database shared by every replica, used through a small connection pool;
    units submitted from the event loop run in commit groups (see the module docstring)."""

    dialect = "postgresql"
    _committer_name = "postgres-committer"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(PG_POOL_SIZE)
        self._workers = [_Flusher("postgres-commit") for _ in range(PG_LANES)]
        self._idle_workers = list(self._workers)
        self._lanes: asyncio.Semaphore | None = None
        self._groups: set[asyncio.Task[None]] = set()
        # The statements each pooled connection holds prepared (see `_Batch`).
        self._prepared: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[str]] = (
            weakref.WeakKeyDictionary()
        )
        self._prepared_lock = threading.Lock()

    def _acquire(self) -> psycopg.Connection[Any]:
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            return self._connect()
        if connection.closed or connection.broken:
            return self._connect()
        return connection

    def _connect(self) -> psycopg.Connection[Any]:
        # autocommit: each `transaction()` block is the one transaction its units run in.
        return psycopg.connect(self.url, autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT)

    def _with_connection(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `work` on a pooled connection; errors reaching the server raise
        DatabaseUnavailable."""
        with self._slots:
            connection: psycopg.Connection[Any] | None = None
            try:
                connection = self._acquire()
                result = work(connection)
            except psycopg.Error as exc:
                if connection is not None:
                    with contextlib.suppress(psycopg.Error):
                        connection.close()
                if _postgres_unavailable(exc):
                    raise DatabaseUnavailable(
                        f"PostgreSQL error: {type(exc).__name__}: {exc}"
                    ) from None
                raise
            except BaseException:
                # The unit raised on purpose and its transaction rolled back: the connection
                # is still good.
                if connection is not None:
                    self._idle.put(connection)
                raise
            self._idle.put(connection)
            return result

    def _transaction(self, connection: psycopg.Connection[Any], unit: Unit[T], durable: bool) -> T:
        with connection.transaction():
            if not durable:
                connection.execute("SET LOCAL synchronous_commit = off")
            return _value(unit(Transaction(connection, self.dialect)))

    def run_sync(self, unit: Unit[T], durable: bool = True) -> T:
        """Run `unit` in a transaction of its own on a pooled connection."""
        return self._with_connection(lambda c: self._transaction(c, unit, durable))

    async def _commit_loop(self) -> None:
        # Up to PG_LANES groups at a time: whatever arrives while every lane is busy forms the
        # next group, which starts as soon as a lane is free.
        assert self._wakeup is not None
        self._lanes = asyncio.Semaphore(PG_LANES)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await self._lanes.acquire()
                group = self._pending[:MAX_GROUP]
                del self._pending[:MAX_GROUP]
                task = asyncio.get_running_loop().create_task(
                    self._run_group(group, self._idle_workers.pop())
                )
                self._groups.add(task)
                task.add_done_callback(self._groups.discard)
            if self._closing:
                await asyncio.gather(*self._groups)
                return

    async def _run_group(self, submitted: list[_Job], worker: _Flusher) -> None:
        try:
            await self._run_group_on(submitted, worker)
        finally:
            self._idle_workers.append(worker)
            assert self._lanes is not None
            self._lanes.release()

    async def _run_group_on(self, submitted: list[_Job], worker: _Flusher) -> None:
        # A caller that gave up (its task was cancelled) is skipped, never answered twice.
        group = [job for job in submitted if not job.future.done()]
        if not group:
            return
        try:
            outcomes = await worker.run(self._run_group_sync, group)
        except Exception as exc:
            for job in group:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        _answer(list(zip(group, outcomes, strict=True)))

    def _run_group_sync(self, group: list[_Job]) -> list[tuple[bool, Any]]:
        """In the worker thread: every job's first unit in one transaction, then the pairs'
        second units in another, on one connection; return each job's (ok, value)."""

        def work(connection: psycopg.Connection[Any]) -> list[tuple[bool, Any]]:
            durable = any(job.durable for job in group if job.then is None)
            outcomes = self._group_transaction(connection, [job.first for job in group], durable)
            seconds = [
                (index, _bind(job.then, value))
                for index, (job, (ok, value)) in enumerate(zip(group, outcomes, strict=True))
                if job.then is not None and ok
            ]
            if seconds:
                results = self._group_transaction(connection, [unit for _, unit in seconds], True)
                for (index, _), result in zip(seconds, results, strict=True):
                    outcomes[index] = result
            return outcomes

        return self._with_connection(work)

    def _group_transaction(
        self, connection: psycopg.Connection[Any], units: list[Unit[Any]], durable: bool
    ) -> list[tuple[bool, Any]]:
        """Run `units` in one transaction and commit it; return each unit's (ok, value).

        Optimistic first, as one query per transaction and without savepoints (they cost two
        round trips per unit): the statements whose answers the units do not need at once
        (`execute_later`) go out with the commit (`_Batch`), so a group of deliveries costs
        one round trip per transaction instead of a few per delivery. A failing statement
        aborts the whole transaction, which then runs again, one statement at a time, with
        a savepoint per unit, so that the error is the failing unit's alone. If the
        connection itself was lost, the whole group fails at once: the rollback may not
        reach the server either, and a rerun would not.
        """
        try:
            return self._optimistic(connection, units, durable)
        except _UnitFailed as failed:
            # `_optimistic` rolled back, unless the connection is gone.
            if _lost(connection):
                raise failed.error from None
        except psycopg.Error:
            # A statement sent with others failed (at the commit), so the unit it belongs to is
            # not known; the rerun tells.
            if _lost(connection):
                raise
        tx = Transaction(connection, self.dialect)
        with connection.transaction():
            if not durable:
                connection.execute("SET LOCAL synchronous_commit = off")
            results = [_run_unit(tx, unit, True) for unit in units]
        return [(ok, _value(value)) for ok, value in results]

    def _optimistic(
        self, connection: psycopg.Connection[Any], units: list[Unit[Any]], durable: bool
    ) -> list[tuple[bool, Any]]:
        with self._prepared_lock:
            prepared = self._prepared.setdefault(connection, set())
        batch = _Batch(connection, prepared)
        tx = Transaction(connection, self.dialect, batch)
        batch.add("BEGIN")
        if not durable:
            batch.add("SET LOCAL synchronous_commit = off")
        results: list[Any] = []
        try:
            for unit in units:
                ok, value = _run_unit(tx, unit, False)
                if not ok:
                    raise _UnitFailed(value)
                results.append(value)
            batch.add("COMMIT")
            batch.send()
        except BaseException:
            # A failed statement leaves the transaction open and aborted; so does a unit that
            # failed between two sends.
            if not _lost(connection):
                with contextlib.suppress(psycopg.Error):
                    if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        connection.execute("ROLLBACK")
            raise
        # The commit was answered, and every statement before it.
        return [(True, _value(value)) for value in results]

    async def aclose(self) -> None:
        """Let the queued groups finish, stop the committer, close the pooled connections."""
        await self._stop_committer()
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Stop the worker threads and close every idle connection."""
        for worker in self._workers:
            worker.stop()
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def open_database(url: str) -> Database:
    """Return the database a `sqlite:///...` or `postgresql://...` URL names."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    if url.startswith("sqlite://"):
        return SqliteDatabase(sqlite_path(url))
    raise ValueError(
        f"Database URL must start with 'sqlite://' or 'postgresql://', not '{url.split(':')[0]}'."
    )
