"""The state a running receiver holds, and the background loops that keep it current.

`Runtime` lives on `app.state.runtime` from startup to shutdown: the loaded secrets, the
store, the metrics, and three loops (watch the secrets directory, migrate until the database
answers, prune old records).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from stripe_webhook_receiver import logs
from stripe_webhook_receiver.database import Database, DatabaseUnavailable, open_database
from stripe_webhook_receiver.metrics import Metrics
from stripe_webhook_receiver.migrations import migrate
from stripe_webhook_receiver.secrets import ReloadReport, SecretsDirectory
from stripe_webhook_receiver.settings import Settings
from stripe_webhook_receiver.store import Store

log = logs.get("runtime")
MIGRATE_RETRY_SECONDS = 1.0


@dataclass
class Runtime:
    """Everything request handlers share."""

    settings: Settings
    metrics: Metrics
    secrets: SecretsDirectory
    database: Database
    store: Store
    migrated: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings, metrics: Metrics) -> Runtime:
        """Read the secrets once and open (but not yet migrate) the database."""
        database = open_database(settings.database_url)
        runtime = cls(
            settings, metrics, SecretsDirectory(settings.secrets_dir), database, Store(database)
        )
        runtime.refresh_secrets()
        return runtime

    def start(self) -> None:
        """Start the background loops."""
        self.tasks = [
            asyncio.create_task(self._migrate_loop(), name="migrate"),
            asyncio.create_task(self._watch_secrets(), name="watch-secrets"),
            asyncio.create_task(self._prune_loop(), name="prune"),
        ]

    async def stop(self) -> None:
        """Stop the loops, then let the database finish its queued work and close."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.database.aclose()

    def refresh_secrets(self) -> ReloadReport:
        """Look at the secrets directory; on a change, log it and count it."""
        report = self.secrets.refresh()
        for filename, message in report.errors.items():
            self.metrics.secret_reload_errors.labels(file=filename).inc()
            log.error(
                "A webhook file in the secrets directory is broken; its last good set is kept.",
                extra={"fields": {"file": filename, "problem": message}},
            )
        if report.changed:
            self.metrics.secret_reloads.inc()
            self.metrics.secret_files_broken.set(len(report.errors))
            self.metrics.webhooks_loaded.set(len(self.secrets.webhooks))
            log.info(
                "Secrets directory loaded.",
                extra={
                    "fields": {
                        "webhooks": {
                            name: config.fingerprints
                            for name, config in sorted(self.secrets.webhooks.items())
                        },
                        "broken_files": sorted(report.errors),
                    }
                },
            )
        return report

    async def _watch_secrets(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            try:
                self.refresh_secrets()
            except Exception:
                # Never let one bad look at the directory stop the reloads for good.
                log.exception("Reading the secrets directory failed; trying again.")

    async def _migrate_loop(self) -> None:
        while True:
            try:
                applied = await migrate(self.database)
            except DatabaseUnavailable as exc:
                log.warning(
                    "The database is unavailable; migrations will be retried.",
                    extra={"fields": {"error": type(exc).__name__}},
                )
                await asyncio.sleep(MIGRATE_RETRY_SECONDS)
                continue
            log.info("Database schema is current.", extra={"fields": {"applied": applied}})
            self.migrated.set()
            return

    async def _prune_loop(self) -> None:
        await self.migrated.wait()
        while True:
            cutoff = int((time.time() - self.settings.retention) * 1000)
            try:
                removed = await self.store.prune(cutoff)
                log.info("Pruned old records.", extra={"fields": {"removed": removed}})
            except DatabaseUnavailable:
                log.warning("Pruning skipped: the database is unavailable.")
            await asyncio.sleep(self.settings.prune_interval)
