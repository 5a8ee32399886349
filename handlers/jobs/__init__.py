"""The jobs service: backup jobs (what to back up from a source and when), their runs, the
backup worker and the scheduler.

Modules: ``routes`` (this service's part of the route table), ``api`` (the API function's
entry point), ``crud`` (jobs: list, create, read, update, delete), ``runs_api`` (run now,
a job's runs, one run, cancel), ``sync`` (``POST /sources/{id}/sync``, bound by the
sources service), ``store`` (the jobs table), ``worker`` (the backup worker) and
``scheduler`` (due jobs and stuck runs). Shared with other services:
``handlers.shared.runs`` (start, cancel, run shape) and ``handlers.shared.schedules``.
"""
