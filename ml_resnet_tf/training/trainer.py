"""Multi-level training (Section 4.1, Table 1) and its two baselines (Section 5.2).

A run is a sequence of *cycles* separated by the epochs in ``interpolate_at``.
Every cycle restarts the cosine learning rate (Eq. 9). A multi-level run starts
from ``start_blocks`` with step size ``h`` and interpolates at each boundary
(twice the blocks, half the step size); a baseline (no interpolation) keeps one
architecture and only restarts the learning rate: with the first cycle's blocks
it is the paper's "first-cycle model", with the last cycle's the "last-cycle model".

Where the paper is silent:

* **Optimizer state.** Each cycle starts with zero momentum, in multi-level runs and
  baselines alike. The paper treats each cycle "as a training process" of its own
  (Section 4.1), and new blocks have no history to carry. A multi-level cycle gets a
  fresh SGD optimizer; a baseline zeroes its momentum in place. Only the step counter
  continues, so the schedule sees the global step.
* **Baselines' step size.** A baseline uses ``step_size`` (default 1) throughout:
  ResNet-50 trained with h = 1 is the standard ResNet that Tables 3 and 4 compare
  against. Pass ``step_size=0.25`` to train it with the multi-level run's final h.
* **Weight decay** is coupled L2 on conv and dense kernels (see
  ``registry.kernel_regularizer``), not on batch-norm parameters.
* **Time.** The paper's "Time" is training time; it does not say what it leaves out. Ours
  leaves out evaluation, checkpoints and logs, and records apart each ``fit``'s start-up
  (tracing the training step: seconds, once per architecture), which would otherwise make
  a scaled-down run understate the saving that depth gives at full scale (``EpochRecorder``).

Devices and precision: ``strategy`` (``distribute``) wraps the whole run, building,
interpolating, compiling and fitting, in one scope (``tf.distribute`` under TensorFlow,
``keras.distribution`` under JAX), and ``batch_size`` is the global batch that the strategy
splits over its replicas. In a cluster only the chief writes ``model_dir``; every other worker
resumes from it and keeps its own writes in a temporary folder (``_train_as_worker``).
``mixed_precision`` is the Keras dtype policy for the run only; ``jit_compile``, ``steps_per_execution`` and the thread
counts change speed, not results, so a run may resume with other values.
"""

import dataclasses
import os
import tempfile

import keras
import tensorflow as tf

from ml_resnet_tf.nets import odenet
from ml_resnet_tf.runs import folder
from ml_resnet_tf.runs.folder import lock
from ml_resnet_tf.runs.records import RunError, RunRecord
from ml_resnet_tf.training import data, distribute, threads
from ml_resnet_tf.training.config import DEFAULTS, ConfigError, TrainConfig
from ml_resnet_tf.training.cycles import RunContext, close_cycle, schedule, start_cycle, train_time
from ml_resnet_tf.training.recorder import EpochRecorder

PROBE_IMAGES = 500  # test images on which residual norms and branch gains are logged every epoch


def train(config: TrainConfig, callbacks=(), verbose: int = 1, log=print, chief: bool | None = None) -> dict:
    """Runs (or resumes, or reports) the run ``config`` describes; returns its results dict.

    ``callbacks`` are extra Keras callbacks for every cycle's ``fit``.
    Raises ConfigError, data.DataError or records.RunError with a one-line message.

    Nothing is written until every flag is checked and the data are read. Then one process at a
    time trains into a ``model_dir`` (``runs.folder.lock``), and the run folder is read again once the
    lock is held, so a second process never works from a stale record. ``chief``: whether this
    process writes ``model_dir``; by default, whether ``TF_CONFIG`` makes it a cluster's chief.
    """
    if not (distribute.is_chief() if chief is None else chief):
        return _train_as_worker(config, callbacks, verbose, log)
    record = RunRecord.open(config.model_dir, dataclasses.asdict(config), DEFAULTS)
    if _settled(record, log):
        return record.results
    if keras.backend.backend() == "tensorflow":
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        try:
            threads.configure(config.intra_op_threads, config.inter_op_threads)
        except RuntimeError:  # the pools exist already: a second run in one process keeps the first's
            log("note: TensorFlow's thread pools were started before this run; --intra_op_threads and "
                "--inter_op_threads apply to a fresh process")
    try:
        strategy = distribute.make_strategy(config.strategy)
    except ValueError as error:
        raise ConfigError(f"--strategy={config.strategy}: {error}") from None
    batch_size = config.effective_batch_size
    if batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"--batch_size={batch_size} does not split over {strategy.num_replicas_in_sync} replicas: "
                          "make the global batch a multiple of the replicas")
    images = data.load(config.dataset, config.data_dir or None, config.download, config.train_subset)
    steps = len(images.train_images) // batch_size
    if not steps:
        raise ConfigError(f"--batch_size={batch_size} is larger than the {len(images.train_images)} training images")
    log(f"{config.strategy} strategy: {strategy.num_replicas_in_sync} replicas, global batch {batch_size}, "
        f"{config.mixed_precision}, jit_compile={config.jit_compile}, steps_per_execution={config.steps_per_execution}")
    with lock(config.model_dir):
        record = RunRecord.open(config.model_dir, dataclasses.asdict(config), DEFAULTS)
        if _settled(record, log):  # finished, or failed, by another process since
            return record.results
        record.use_data(images, log)
        record.check_checkpoint()  # a foreign part is refused before this process writes anything
        record.results["sessions"].append({"from_epoch": record.epochs_done, "backend": keras.backend.backend(),
                                           "keras": keras.__version__, "replicas": strategy.num_replicas_in_sync,
                                           "device": distribute.device_kind()})
        record.save()  # results.json before anything else: from here on a kill leaves a run that resumes
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(config.mixed_precision)
        try:
            with strategy.scope():
                return _train(config, record, images, steps, callbacks, verbose, log)
        except tf.errors.OpError as error:
            if config.strategy != "multi_worker":
                raise
            raise RunError(f"{config.model_dir}: a collective op of the cluster failed ({_collective_cause(error)}); "
                           "if a worker stopped, restart every worker with the same command: the run resumes from "
                           f"its checkpoint after epoch {record.epochs_done}") from None
        finally:
            keras.config.set_dtype_policy(previous_policy)


def _collective_cause(error) -> str:
    """The line of a failed collective op's message that says why (TensorFlow puts it last but two)."""
    prefix = "Collective ops is aborted by:"
    lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
    cause = next((line for line in lines if line.startswith(prefix)), lines[0] if lines else "")
    return cause.removeprefix(prefix).strip() or type(error).__name__


def _train_as_worker(config, callbacks, verbose, log):
    """A non-chief worker: trains in lockstep with the chief from the chief's run folder (which all
    workers must see, as on any shared file system), but writes only a copy of its own, removed at
    the end. Restarted after a crash, it resumes from the chief's last checkpoint, as the chief does."""
    with tempfile.TemporaryDirectory(prefix="ml_resnet_tf-worker-") as scratch:
        folder.copy_run(config.model_dir, scratch)
        log(f"a non-chief worker: the chief writes {config.model_dir}; this worker writes a copy in {scratch}, "
            "removed when it ends")
        return train(dataclasses.replace(config, model_dir=scratch), callbacks, verbose,
                     lambda line: log(f"[worker] {line}"), chief=True)


def _settled(record, log) -> bool:
    """True for a finished run (reported); raises RunError for a failed one; False for one to train."""
    if record.failed:
        raise RunError(f"{record.model_dir} holds a run that failed ({record.results['failure']}); "
                       "move it away or choose a new --model_dir")
    if record.finished:
        final = record.results["final"]
        log(f"{record.model_dir} holds a finished run: test error {final['test_error']:.2%}, "
            f"{train_time(final)}; nothing to do")
    return record.finished


def _train(config, record, images, steps, callbacks, verbose, log):
    """The cycles of ``train``, inside its strategy's scope and dtype policy; ``steps`` per epoch."""
    batch_size = config.effective_batch_size
    test_data = data.test_dataset(images.test_images, images.test_labels, batch_size)
    probe = data.standardize(images.test_images[:PROBE_IMAGES]).numpy()
    writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "dynamics"))
    model = record.load_checkpoint(log) if record.epochs_done else None
    results, done = record.results, record.epochs_done  # a corrupt latest checkpoint costs one epoch
    run = RunContext(config, images, test_data, probe, schedule(config, steps), steps, results, log, writer)
    if model is not None:  # a resumed run may switch it: the function and the weights are the same
        model.spec["memory_efficient"] = config.memory_efficient
    keras.utils.set_random_seed(config.seed)
    plan = config.cycles()
    for cycle in plan:
        if cycle.end_epoch <= done:
            continue
        if done == cycle.start_epoch:
            model = start_cycle(model, cycle, run)
            record.save()
        first = max(done, cycle.start_epoch)
        recorder = EpochRecorder(record, cycle, run.schedule, probe, writer)
        model.fit(data.train_dataset(images.train_images, images.train_labels, images.spec.pad, batch_size,
                                     config.seed, range(first, cycle.end_epoch), config.data_threads),
                  epochs=cycle.end_epoch, initial_epoch=first, steps_per_epoch=steps,
                  validation_data=test_data, shuffle=False, verbose=verbose,
                  callbacks=[keras.callbacks.TerminateOnNaN(), recorder,
                             keras.callbacks.TensorBoard(config.model_dir, write_graph=False, profile_batch=0),
                             *callbacks])
        if recorder.diverged:
            _fail(record, *recorder.diverged)
        done = cycle.end_epoch
        summary = close_cycle(results, cycle)
        record.save()
        log(f"cycle {cycle.index}/{len(plan)}: {odenet.format_blocks(cycle.blocks_per_stage)} blocks, "
            f"h={cycle.step_size:g}, {summary['params']:,} params, epochs {cycle.start_epoch + 1}-"
            f"{cycle.end_epoch}, {train_time(summary)}, "
            f"test error {summary['test_error']:.2%}")
    for cycle in plan:  # a cycle whose end was reached in an earlier, interrupted process
        close_cycle(results, cycle)
    last = results["epochs"][-1]
    final = {"test_error": last["test_error"], "test_accuracy": last["test_accuracy"],
             **{key: _total(results["cycles"], key) for key in
                ("train_seconds", "startup_seconds", "train_cpu_seconds", "startup_cpu_seconds")}}
    record.finish(model, final)
    log(f"finished: test error {final['test_error']:.2%}, {train_time(final)}; "
        f"results in {os.path.join(config.model_dir, 'results.json')}, "
        f"TensorBoard: tensorboard --logdir {config.model_dir}")
    return results


def _total(cycles: list, key: str):
    """The cycles' sum of ``key``; None where a cycle lacks it (CPU times before schema 7)."""
    values = [c[key] for c in cycles]
    return None if None in values else sum(values)


def _fail(record, epoch, losses):
    """Marks a diverged run failed and stops it with one line; its last checkpoint is the last finite model."""
    shown = ", ".join(f"{'train' if key == 'loss' else 'test'} loss {value}" for key, value in losses.items())
    kept = record.results["checkpoint"]
    failure = (f"the run diverged in epoch {epoch} ({shown}) and is marked failed; "
               + (f"its last finite checkpoint is {kept}" if kept else "no epoch finished with a finite loss")
               + ": lower --lr_max, or check the data, and train into a new --model_dir")
    record.fail(failure)
    raise RunError(f"{record.model_dir}: {failure}")
