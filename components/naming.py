"""Physical names, from one place. They follow the seed deployment so an existing stage
can be adopted and operators find things where they expect them (DESIGN section 2)."""

from __future__ import annotations

from dataclasses import dataclass

APP = "listbackup"


@dataclass(frozen=True)
class Names:
    stage: str

    @property
    def table_prefix(self) -> str:
        return f"{APP}-{self.stage}-"

    def table(self, name: str) -> str:
        return f"{self.table_prefix}{name}"

    @property
    def data_bucket(self) -> str:
        return f"{APP}-data-{self.stage}"

    def queue(self, kind: str) -> str:
        return f"{APP}-{kind}-queue-{self.stage}"

    def dead_letter_queue(self, kind: str) -> str:
        return f"{self.queue(kind)}-dlq"

    def function(self, service: str, function: str) -> str:
        return f"{APP}-{service}-{self.stage}-{function}"

    def log_group(self, function_name: str) -> str:
        return f"/aws/lambda/{function_name}"

    def parameter(self, name: str) -> str:
        return f"/{APP}/{self.stage}/{name}"

    @property
    def kms_alias(self) -> str:
        return f"alias/{APP}-{self.stage}-credentials"

    @property
    def layer(self) -> str:
        return f"{APP}-{self.stage}-runtime"

    @property
    def issuer(self) -> str:
        return f"{APP}-{self.stage}"
