"""``distnet plot``: a run's learning curves, its confusion matrix and a grid of misclassified test
images, as PNG files (needs matplotlib: ``pip install matplotlib``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError, warn
from ..io import FILE_TOO_LARGE, NO_ROOM
from .common import add_data_arguments, file_or_folder, folder

DPI = 100
# Every figure has a fixed size in pixels (width, height): no tight bounding box that would change it.
SIZES = {"learning_curves.png": (900, 600), "confusion_matrix.png": (800, 800), "misclassified.png": (900, 1000)}
GRID = (6, 6)  # misclassified images drawn, rows x columns


def register(subparsers: argparse._SubParsersAction) -> None:
    plot = subparsers.add_parser(
        "plot", help="learning curves, confusion matrix and misclassified images of a run, as PNG",
        description="Write learning_curves.png (train and validation error per evaluation), "
                    "confusion_matrix.png and misclassified.png (the best network's surest mistakes on "
                    "the test set) for the run in RUN_DIR. Needs matplotlib: pip install matplotlib.")
    plot.add_argument("run_dir", type=file_or_folder, metavar="RUN_DIR",
                      help="a run directory written by distnet train (or its best.npz, which stands for it)")
    plot.add_argument("--out", type=folder, help="where to write the PNG files (default: RUN_DIR/plots)")
    add_data_arguments(plot, of_model=True)
    plot.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..metrics import confident_mistakes, evaluation_of
    from ..rundir import RunDir, shell_path
    from .common import model_and_test_data

    run_dir = RunDir(run_of(args.run_dir))
    config = run_dir.config()
    history = read_history(run_dir.history_path)
    if not run_dir.best_path.exists():
        raise ConfigError(run_dir.no_best_network())
    pyplot = import_pyplot()
    args.model = run_dir.best_path
    network, test = model_and_test_data(args)
    outputs = network.predict(test.images)
    evaluation = evaluation_of(outputs, test.labels, test.classes)
    mistakes = confident_mistakes(outputs, test.labels, GRID[0] * GRID[1])

    out = args.out or run_dir.path / "plots"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the PNG files")
    title = f"{config.get('preset') or 'custom'} on {args.dataset}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [
            save(pyplot, learning_curves(pyplot, history, title, bool(config.get("augmentation"))),
                 out / "learning_curves.png"),
            save(pyplot, confusion_matrix(pyplot, evaluation, title), out / "confusion_matrix.png"),
            save(pyplot, misclassified(pyplot, test, outputs, mistakes, title), out / "misclassified.png"),
        ]
    except OSError as e:
        elsewhere = f"distnet plot {shell_path(run_dir.path)} --out FOLDER"
        fix = ("raise the limit on the size of the files a process writes (ulimit -f)" if e.errno == FILE_TOO_LARGE else
               f"free some space, or give a folder on a disk with room: {elsewhere}" if e.errno in NO_ROOM else
               f"give a folder you can write to, {elsewhere}")
        raise ConfigError(f"cannot write the plots into {out} ({e.strerror or e}): {fix}") from None
    for path in written:
        print(path)
    return 0


def run_of(path: Path) -> Path:
    """The run directory ``path`` names: itself, or the run whose best.npz it is (which evaluate,
    show and predict take for the run as well; plot draws that network, with the run's curves).
    ConfigError for another file of a run (a checkpoint, a best network set aside), which plot
    would not draw but the run's best."""
    from ..rundir import RunDir, shell_path

    run = RunDir(path.parent)
    if not path.is_file() or not run.config_path.is_file():
        return path  # a run directory, or what RunDir.config says is none
    if path == run.best_path:
        return run.path
    raise ConfigError(f"{path} is a file of the run in {run.path}, not its best network ({run.best_path.name}), "
                      f"which plot draws with the run's learning curves: give the run directory, distnet plot "
                      f"{shell_path(run.path)}")


def import_pyplot():
    """matplotlib's pyplot, drawing into files only; ConfigError, saying how to install it, without."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as pyplot

    return pyplot


def read_history(path: Path) -> list[dict]:
    """The evaluation records of the history.jsonl at ``path``, checked to hold what the curves
    draw; a last line cut short (a run killed as it wrote it) is left out with a warning, any other
    line that is not a record is a ConfigError."""
    from ..rundir import RunDir

    try:
        # Bytes that are not UTF-8 make their line's JSON invalid, which is said below.
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise ConfigError(f"{path.parent} is not a run directory (no history.jsonl); expected the folder of a run "
                          f"that distnet train wrote") from None
    lines = text.splitlines()
    history = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # (RecursionError: nested beyond reason)
            if number == len(lines) and not text.endswith("\n"):  # what a run killed while writing it leaves
                warn(f"{path}: the last line (line {number}) was cut short as it was written: the "
                     f"evaluations before it are drawn (a resume of the run rewrites the file)")
                break
            raise ConfigError(f"{path}: line {number} is not valid JSON (a resume of the run, "
                              f"{RunDir(path.parent).resume_command()}, writes the file again from its "
                              f"checkpoint)") from None
        # The curves need these in every record (validation_error too, when the first has it).
        needed = ("epoch", "train_error") + (("validation_error",) if history and "validation_error" in history[0]
                                             else ())
        if not (isinstance(record, dict) and all(isinstance(record.get(key), (int, float)) for key in needed)):
            raise ConfigError(f"{path}: line {number} is not an evaluation record (a JSON object with numbers "
                              f"for {', '.join(needed)}), so not one distnet wrote")
        history.append(record)
    return history


def figure(pyplot, name: str):
    width, height = SIZES[name]
    return pyplot.figure(figsize=(width / DPI, height / DPI), dpi=DPI)


def save(pyplot, fig, path: Path) -> Path:
    from ..io import atomic_writer

    with atomic_writer(path) as f:
        fig.savefig(f, dpi=DPI, format="png")
    pyplot.close(fig)
    return path


def learning_curves(pyplot, history: list[dict], title: str, augmented: bool = False):
    fig = figure(pyplot, "learning_curves.png")
    axes = fig.add_subplot()
    if history:
        epochs = [h["epoch"] for h in history]
        axes.plot(epochs, [100 * h["train_error"] for h in history], "o-",
                  label="train error (running, on the augmented images)" if augmented else "train error (running)")
        if "validation_error" in history[0]:  # a run without a validation set scores only its training
            axes.plot(epochs, [100 * h["validation_error"] for h in history], "o-", label="validation error")
            best = min(history, key=lambda h: h["validation_error"])
            axes.axvline(best["epoch"], color="grey", linestyle=":",
                         label=f"best: {100 * best['validation_error']:.2f}% (epoch {best['epoch']})")
        axes.set_yscale("log")
        plain = pyplot.matplotlib.ticker.FormatStrFormatter("%g")
        axes.yaxis.set_major_formatter(plain)
        axes.yaxis.set_minor_formatter(plain)
        axes.xaxis.set_major_locator(pyplot.matplotlib.ticker.MaxNLocator(integer=True))
        if len(set(epochs)) == 1:  # one evaluation: the locator would tick fractions of an epoch
            axes.set_xlim(epochs[0] - 1, epochs[0] + 1)
        axes.legend()
    else:  # (a legend of no curves is a warning of matplotlib's, which reached the user)
        axes.text(0.5, 0.5, "no evaluation yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("epoch")
    axes.set_ylabel("error rate (%)")
    axes.set_title(f"learning curves: {title}")
    axes.grid(True, which="both", alpha=0.3)
    fig.subplots_adjust(left=0.1, right=0.95, top=0.92, bottom=0.1)
    return fig


def confusion_matrix(pyplot, evaluation, title: str):
    fig = figure(pyplot, "confusion_matrix.png")
    axes = fig.add_subplot()
    confusion = evaluation.confusion
    # Log scale so the few confusions show beside the large diagonal.
    axes.imshow(np.log1p(confusion), cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        axes.text(j, i, str(count), ha="center", va="center", fontsize=8,
                  color="white" if i == j else "black")
    from ..metrics import class_label

    labels = [class_label(evaluation.classes, i) for i in range(len(evaluation.classes))]  # as the text shows them
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true class")
    axes.set_title(f"test confusion matrix: {title}, error {100 * evaluation.error_rate:.2f}%")
    fig.subplots_adjust(left=0.18, right=0.95, top=0.93, bottom=0.16)
    return fig


def misclassified(pyplot, test, outputs: np.ndarray, mistakes: np.ndarray, title: str):
    fig = figure(pyplot, "misclassified.png")
    rows, columns = GRID
    for cell in range(rows * columns):
        axes = fig.add_subplot(rows, columns, cell + 1)
        axes.axis("off")
        if cell >= len(mistakes):
            continue
        i = mistakes[cell]
        predicted = int(outputs[i].argmax())
        axes.imshow(test.images[i].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
        # Class numbers: a sixth of the width has no room for "Ankle boot → Sneaker".
        axes.set_title(f"#{i}: {test.labels[i]} → {predicted}\np {outputs[i, predicted]:.2f}", fontsize=8)
    named = [f"{k} {name}" for k, name in enumerate(test.classes) if name != str(k)]
    legend = f"\n{', '.join(named)}" if named else ""
    fig.suptitle(f"surest mistakes on the test set (label → network): {title}{legend}",
                 fontsize=10 if named else None)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.9 if named else 0.92, bottom=0.02, hspace=0.5)
    return fig
