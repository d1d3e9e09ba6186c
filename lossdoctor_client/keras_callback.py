"""`LossDoctorCallback`: stream the history to lossdoctor while a Keras model trains.

Every `every_n_epochs` epochs the history so far (and the run, read from the model once at
`on_train_begin`) is posted to `POST /v1/diagnoses` (static mode) by a background daemon
thread; `on_epoch_end` only puts a snapshot into a queue. A severe symptom (non-finite loss,
divergence, explosion, stuck at chance) is logged once, as soon as a report shows it. At
`on_train_end` the callback waits at most `timeout` seconds for the final diagnosis and prints
its summary and the top fix. When the service is down, it warns once and training goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import keras

from lossdoctor_client.client import (
    LossDoctor,
    LossDoctorError,
    LossDoctorUnavailable,
    jsonable,
    run_from_keras,
)
from lossdoctor_client.text import summary_text
from service.schemas.diagnosis import Diagnosis

logger = logging.getLogger("lossdoctor_client")

SEVERE = ("non_finite_loss", "divergence", "explosion", "stuck_at_chance")

_FINAL = "final"
_EPOCH = "epoch"
_STOP = "stop"


class LossDoctorCallback(keras.callbacks.Callback):
    """Diagnose the run while it trains.

    `sample=(x, y)`: a small slice of the training arrays, uploaded once (in the thread) so
    the diagnosis sees the data. `run_fields` are merged into the run (`batch_size=64`,
    `preprocessing={"normalization": "rescale"}`); `epochs` defaults to `fit`'s.
    `self.diagnosis` holds the latest diagnosis, `self.warned` the severe symptoms reported.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        every_n_epochs: int = 1,
        sample: tuple[Any, Any] | None = None,
        timeout: float = 2.0,
        verbose: bool = True,
        **run_fields: Any,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError("every_n_epochs must be at least 1")
        self.url = url
        self.api_key = api_key
        self.every_n_epochs = every_n_epochs
        self.sample = sample
        self.timeout = timeout
        self.verbose = verbose
        self.run_fields = run_fields
        self.diagnosis: Diagnosis | None = None
        self.warned: set[str] = set()
        self._history: dict[str, list[Any]] = {}
        self._run: dict[str, Any] = {}
        self._queue: queue.Queue[tuple[str, dict[str, list[Any]] | None]] = queue.Queue()
        self._final_done = threading.Event()
        self._thread: threading.Thread | None = None
        self._down = False  # unreachable, or refused: no more requests, no more warnings
        self._dataset_id: str | None = None
        self._sample_tried = False
        self._final: Diagnosis | None = None

    # -- Keras hooks: cheap, never touch the network ------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._history = {}
        self._final_done.clear()
        self._final = None
        fields = dict(self.run_fields)
        epochs = (self.params or {}).get("epochs")
        if epochs and "epochs" not in fields:
            fields["epochs"] = int(epochs)
        try:
            self._run = run_from_keras(self.model, sample=self.sample, **fields)
        except Exception as exc:  # a model Keras cannot serialize: diagnose the curves alone
            logger.debug("lossdoctor: run not described (%s); sending the history only", exc)
            self._run = jsonable({k: v for k, v in fields.items() if v is not None})
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._work, name="lossdoctor-callback", daemon=True
            )
            self._thread.start()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            self._history.setdefault(key, []).append(_number(value))
        if (epoch + 1) % self.every_n_epochs == 0 and not self._down:
            self._queue.put((_EPOCH, self._snapshot()))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._thread is None:
            return
        if self._down or "loss" not in self._history:
            self._queue.put((_STOP, None))
            return
        self._queue.put((_FINAL, self._snapshot()))
        if not self._final_done.wait(self.timeout):
            logger.info("lossdoctor: no final diagnosis within %.3g s", self.timeout)
            return
        if self._final is not None and self._final.report is not None and self.verbose:
            print(summary_text(self._final))

    # -- the background thread ---------------------------------------------------------------

    def _snapshot(self) -> dict[str, list[Any]]:
        return {k: list(v) for k, v in self._history.items()}

    def _work(self) -> None:
        client = LossDoctor(self.url, self.api_key, timeout=self.timeout)
        try:
            while True:
                kind, history = self._queue.get()
                # Keep only the newest snapshot: a slow service never builds a backlog.
                while kind == _EPOCH:
                    try:
                        kind, history = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if kind == _STOP:
                    return
                if history is not None and not self._down:
                    self._diagnose(client, history)
                if kind == _FINAL:
                    self._final = self.diagnosis
                    self._final_done.set()
                    return
        finally:
            client.close()
            self._final_done.set()

    def _diagnose(self, client: LossDoctor, history: dict[str, list[Any]]) -> None:
        try:
            if self.sample is not None and not self._sample_tried:
                self._sample_tried = True
                self._dataset_id = client.upload_dataset(*self.sample).id
            try:
                diagnosis = client.diagnose(self._run, history, dataset_id=self._dataset_id)
            except LossDoctorError as exc:
                if isinstance(exc, LossDoctorUnavailable) or exc.status != 422 or not self._run:
                    raise
                # The service cannot read this run (a layer outside its allowlist, say): say so
                # once and diagnose the curves alone from now on.
                logger.warning("lossdoctor: run not accepted (%s); sending the history only", exc)
                self._run, self._dataset_id = {}, None
                diagnosis = client.diagnose(None, history)
        except LossDoctorError as exc:
            self._down = True
            logger.warning(
                "lossdoctor: no diagnosis (%s); training continues without lossdoctor", exc
            )
            return
        except Exception as exc:  # never let the thread's failure reach training
            self._down = True
            logger.warning("lossdoctor: no diagnosis (%r); training continues", exc)
            return
        self.diagnosis = diagnosis
        report = diagnosis.report
        if report is None:
            return
        for symptom in report.symptoms:
            if symptom.id in SEVERE and symptom.id not in self.warned:
                self.warned.add(symptom.id)
                logger.warning(
                    "lossdoctor: %s at epochs %d-%d: %s",
                    symptom.id,
                    symptom.epochs[0],
                    symptom.epochs[1],
                    symptom.detail,
                )


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
