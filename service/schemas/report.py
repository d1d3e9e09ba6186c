"""The diagnosis report: symptoms in the curves, ranked causes with evidence, fixes, probes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CauseId = Literal[
    "learning_rate_too_high",
    "learning_rate_too_low",
    "missing_lr_decay",
    "poor_weight_initialization",
    "unnormalized_inputs",
    "noisy_labels",
    "excessive_regularization",
    "insufficient_capacity",
    "overfitting",
    "batch_size_too_small",
    "batch_size_too_large",
    "kernel_size_mismatch",
    "output_loss_mismatch",
]

SymptomId = Literal[
    "non_finite_loss",
    "divergence",
    "explosion",
    "high_initial_loss",
    "stuck_at_chance",
    "plateau",
    "slow_decrease",
    "oscillation",
    "late_collapse",
    "train_val_gap",
    "noisy_floor",
]


class Symptom(BaseModel):
    id: SymptomId
    epochs: tuple[int, int] = Field(description="First and last epoch (1-based) that show it.")
    detail: str


class ProbeEvidence(BaseModel):
    """What a probe training showed about one cause."""

    name: str
    change: dict[str, Any]
    baseline_loss: float | None
    probe_loss: float | None
    improvement: float | None
    seeds: int
    spread: float | None
    confirmed: bool


class Change(BaseModel):
    """One edit of the run, in the user's terms: where, what it was, what it becomes."""

    path: str = Field(
        description="Dotted path in the run: `optimizer.learning_rate`, "
        "`model.layers.<layer name>.<Keras argument>`, `data.sample.<row>`.",
        examples=["model.layers.conv2d_47.kernel_size"],
    )
    # "from" is a Python keyword: the field is from_, the JSON key "from" (also when dumped).
    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    from_: Any = Field(default=None, alias="from")
    to: Any = None


class Fix(BaseModel):
    summary: str
    changes: list[Change] = Field(
        default_factory=list, description="What the fix changes, path by path."
    )
    keras: list[str] = Field(
        default_factory=list, description="The Keras lines that make the change."
    )
    patch: dict[str, Any] = Field(description="RFC 7396 JSON merge patch of `run`.")
    unavailable: str | None = Field(
        default=None,
        description="Why no concrete change can be given (then `changes` and `patch` are "
        "empty), and what would make one possible.",
    )
    verified: ProbeEvidence | None = Field(
        default=None,
        description="With probes: this fix trained as one patch (the `combined` probe) against "
        "the replayed run: baseline and fixed loss, seeds, spread.",
    )


class Cause(BaseModel):
    id: CauseId
    confidence: float = Field(ge=0, le=1)
    evidence: list[str]
    fix: Fix
    probe: ProbeEvidence | None = None


class DataCheck(BaseModel):
    id: str
    status: Literal["ok", "warning", "fail"]
    detail: str


class LabelSuspect(BaseModel):
    """One example whose label the audit doubts."""

    index: int = Field(ge=0, description="Row of the uploaded sample (x[index], y[index]).")
    given: int = Field(description="The label the sample gives.")
    likely: int = Field(description="The label out-of-sample predictions favour.")
    confidence: float = Field(
        ge=0, le=1, description="Out-of-sample predicted probability of `likely`."
    )


class LabelAudit(BaseModel):
    """Confident learning (cleanlab) on K-fold out-of-sample predictions for the sample."""

    method: str
    folds: int
    num_examples: int
    out_of_sample_accuracy: float = Field(
        description="Agreement of the K-fold predictions with the given labels."
    )
    noise_rate: float = Field(ge=0, le=1, description="Estimated share of wrong labels.")
    flip_matrix: list[list[float]] = Field(
        description="Estimated P(given label = i | true label = j), rows i, columns j."
    )
    suspects: list[LabelSuspect] = Field(
        description="Every example flagged as a label issue, most doubtful first: the label "
        "fix drops all of them."
    )


class ProbeRun(BaseModel):
    """One probe training as it ran."""

    name: str
    change: dict[str, Any]
    status: Literal["queued", "running", "succeeded", "failed", "skipped", "not_applicable"]
    device: str | None = None
    seeds: int = 0
    steps: int = 0
    final_loss: float | None = None
    spread: float | None = None
    curve: list[float | None] = Field(default_factory=list)
    detail: str | None = None


class Report(BaseModel):
    verdict: Literal["healthy", "problem"]
    summary: str
    symptoms: list[Symptom]
    causes: list[Cause]
    data_checks: list[DataCheck] = Field(default_factory=list)
    probes: list[ProbeRun] = Field(default_factory=list)
    label_audit: LabelAudit | None = Field(
        default=None, description="Present when the probe plan audited the sample's labels."
    )
    notes: list[str] = Field(
        default_factory=list, description="What the analysis could not see (missing inputs)."
    )
