"""`distnet predict`'s files: pictures of every depth and with transparency read as the same grey
values, pictures turned upright as their EXIF orientation says, each file read by what its first
bytes say it holds, and clear one-line errors for pictures too large, blank or out of range, for
folders and for pickled .npy files."""
import json
import os
import pickle

import numpy as np
import pytest

from distnet import Dense, Network
from distnet.cli import main
from distnet.commands.predict import read_images
from distnet.data import write_idx
from distnet.errors import DataFormatError

Image = pytest.importorskip("PIL.Image")


def run_cli(capsys, *argv):
    """Exit status, stdout, stderr of one `distnet` command run in this process."""
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def model(tmp_path):
    digits = {"name": "digits", "classes": [str(i) for i in range(10)]}
    return Network([Dense(10, "softmax")], input_size=784, seed=0).save(tmp_path / "model.npz",
                                                                        notes={"trained_on": digits})


def ring(side: int = 28) -> np.ndarray:
    """A light, anti-aliased zero on black, as MNIST draws its digits: bytes with many grey levels."""
    y, x = np.mgrid[:side, :side] * (28 / side)
    radius = np.hypot(y - 14, x - 14)
    return np.rint(255 * np.exp(-((radius - 8) ** 2) / 6)).astype(np.uint8)


def pixels_of(path):
    return read_images(path)[1]


def mode_of(path):
    with Image.open(path) as picture:
        return picture.mode


@pytest.mark.parametrize("side", [28, 56])  # 56: read, then scaled to 28x28
def test_16_bit_integer_and_float_pictures_read_as_the_8_bit_one(tmp_path, side):
    ink = 255 - ring(side)  # dark ink on white paper, inverted by --invert auto
    Image.fromarray(ink).save(tmp_path / "8.png")
    Image.fromarray(ink.astype(np.uint16) * 257).save(tmp_path / "16.png")  # 0..65535
    Image.fromarray(ink.astype(np.uint16) * 257).save(tmp_path / "16.pgm")  # opens as 32-bit integers (mode I)
    Image.fromarray(ink.astype(np.int32)).save(tmp_path / "32.tiff")  # mode I holding bytes
    Image.fromarray(ink.astype(np.float32) / 255).save(tmp_path / "float.tiff")  # mode F, 0..1
    assert [mode_of(tmp_path / name) for name in ("16.png", "16.pgm", "32.tiff", "float.tiff")] == \
        ["I;16", "I", "I", "F"]
    expected = pixels_of(tmp_path / "8.png")
    if side == 28:
        assert expected == pytest.approx(ring().reshape(1, 784) / 255, abs=1e-6)
    for name in ("16.png", "16.pgm", "32.tiff", "float.tiff"):
        assert pixels_of(tmp_path / name) == pytest.approx(expected, abs=1e-6), name


ORIENTATION = 0x0112  # the EXIF tag that says how to turn a picture to show it upright

# Each EXIF orientation, and how a picture is stored that it turns upright: numpy's turns, not
# Pillow's, so that the test does not check Pillow against itself.
STORED_TURNED = {
    2: np.fliplr,  # mirrored left to right
    3: lambda upright: np.rot90(upright, 2),
    4: np.flipud,
    5: np.transpose,
    6: lambda upright: np.rot90(upright, 1),  # a phone held upright: its sensor's rows run up the picture
    7: lambda upright: np.rot90(upright, 2).T,
    8: lambda upright: np.rot90(upright, -1),
}


def lopsided() -> np.ndarray:
    """A light digit on black that no turn or mirror leaves as it is: a stem, a foot, a dot."""
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 6:10] = 255
    digit[20:24, 10:20] = 200
    digit[4:8, 18:22] = 120
    return digit


def save_turned(path, upright: np.ndarray, orientation: int, **options) -> None:
    """``upright`` stored turned, with the EXIF orientation that turns it back."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    stored = np.ascontiguousarray(STORED_TURNED[orientation](upright))
    assert not np.array_equal(stored, upright)  # else the test would prove nothing
    Image.fromarray(stored).convert("RGB").save(path, exif=exif, **options)


@pytest.mark.parametrize("orientation", sorted(STORED_TURNED))
def test_a_picture_is_read_upright_as_its_exif_orientation_says(tmp_path, orientation):
    save_turned(tmp_path / "turned.png", lopsided(), orientation)
    assert pixels_of(tmp_path / "turned.png") == pytest.approx(lopsided().reshape(1, 784) / 255, abs=1e-6)


def test_a_phone_photo_tagged_to_be_turned_reads_as_the_upright_photo(capsys, model, tmp_path):
    """A photo taken with the phone held upright is stored on its side, wider than tall, with
    Orientation 6 (turn it a quarter clockwise); it had been read, and classified, sideways."""
    paper = 255 - np.kron(lopsided(), np.ones((4, 3), np.uint8))  # dark ink on paper, 112 tall, 84 wide
    Image.fromarray(paper).save(tmp_path / "upright.png")
    save_turned(tmp_path / "photo.jpg", paper, 6, quality=100)
    with Image.open(tmp_path / "photo.jpg") as photo:
        assert photo.size == (112, 84)  # width, height: as stored
    upright = pixels_of(tmp_path / "upright.png")
    assert pixels_of(tmp_path / "photo.jpg") == pytest.approx(upright, abs=0.02)  # JPEG's loss, no more
    status, out, _ = run_cli(capsys, "predict", model, tmp_path / "photo.jpg", "--json")
    assert status == 0
    assert json.loads(out)["probabilities"] == pytest.approx(Network.load(model).predict(upright)[0], abs=1e-3)


def test_a_digit_drawn_in_the_alpha_channel_reads_as_the_same_digit_on_paper(tmp_path):
    digit = ring()
    Image.fromarray(255 - digit).save(tmp_path / "paper.png")
    black = np.zeros((28, 28, 4), np.uint8)
    black[..., 3] = digit  # black strokes over a transparent background
    Image.fromarray(black, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(black[..., 2:], "LA").save(tmp_path / "la.png")
    white = black.copy()
    white[..., :3] = 255  # white strokes: laid over black, left as they are by --invert auto
    Image.fromarray(white, "RGBA").save(tmp_path / "white.png")
    palette = Image.fromarray(digit, "P")  # black in every entry, entry i as opaque as i
    palette.putpalette(bytes(3 * 256))
    palette.save(tmp_path / "palette.png", transparency=bytes(range(256)))
    expected = digit.reshape(1, 784) / np.float32(255)
    assert pixels_of(tmp_path / "paper.png") == pytest.approx(expected, abs=1e-6)
    for name in ("rgba.png", "la.png", "white.png"):
        assert pixels_of(tmp_path / name) == pytest.approx(expected, abs=1e-6), name
    assert mode_of(tmp_path / "palette.png") == "P"  # a palette with transparency (tRNS)
    assert pixels_of(tmp_path / "palette.png") == pytest.approx(expected, abs=1e-6)


def test_a_picture_whose_paper_colour_is_marked_transparent_reads_as_the_paper_it_shows(tmp_path):
    """A colour key (GIF, PNG tRNS) leaves the near-white edges of dark strokes opaque: laid on the
    background its opaque pixels seemed to ask for (black), such a digit read as noise."""
    ink = 255 - ring()  # dark ink on white paper, most of its edge pixels lighter than mid-grey
    Image.fromarray(ink).save(tmp_path / "paper.png")
    Image.fromarray(ink).save(tmp_path / "grey-key.png", transparency=255)
    Image.fromarray(ink).convert("RGB").save(tmp_path / "rgb-key.png", transparency=(255, 255, 255))
    palette = Image.fromarray(ink).convert("P")  # (an 8-bit grey palette: the same values)
    palette.save(tmp_path / "key.gif", transparency=int(np.asarray(palette)[0, 0]))
    expected = pixels_of(tmp_path / "paper.png")
    for name in ("grey-key.png", "rgb-key.png", "key.gif"):
        assert pixels_of(tmp_path / name) == pytest.approx(expected, abs=1e-6), name


RESAVE = "if the picture shows one, save it as an 8-bit greyscale PNG"


@pytest.mark.parametrize("picture,grey,advice", [
    (Image.new("L", (28, 28), 255), "1", "a blank scan?"),  # blank paper, 8-bit grey already: not told to be so
    (Image.new("RGBA", (50, 40), (0, 0, 0, 0)), "1", RESAVE),  # fully transparent
    (Image.new("F", (28, 28), 0.25), "0.25", RESAVE),
])
def test_a_picture_of_one_grey_is_refused(capsys, model, tmp_path, picture, grey, advice):
    picture.save(tmp_path / "blank.tiff")
    status, out, err = run_cli(capsys, "predict", model, tmp_path / "blank.tiff")
    assert (status, out) == (2, "")
    assert err == (f"distnet: error: {tmp_path / 'blank.tiff'}: every pixel reads as the same grey ({grey}, from 0 "
                   f"black to 1 white), so there is no digit to classify; {advice}\n")


def test_a_file_that_cannot_be_read_is_said_and_the_others_are_classified(capsys, model, tmp_path):
    """One blank scan or stray file among `predict MODEL digits/*` lost every file after it; a
    misspelt name was found only when its turn came, after the files before it were printed."""
    np.save(tmp_path / "a.npy", ring())
    Image.new("L", (28, 28), 128).save(tmp_path / "blank.png")
    np.save(tmp_path / "b.npy", ring())
    status, out, err = run_cli(capsys, "predict", model, tmp_path / "a.npy", tmp_path / "blank.png", tmp_path / "b.npy")
    assert status == 2
    assert [line.split(":")[0] for line in out.splitlines()[::2]] == [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    assert err.splitlines() == [
        f"distnet: error: {tmp_path / 'blank.png'}: every pixel reads as the same grey (0.502, from 0 black to 1 white), "
        f"so there is no digit to classify; a blank scan?",
        "distnet: error: 1 of 3 files could not be read (said above); the others are classified"]
    status, out, _ = run_cli(capsys, "predict", "--json", model, tmp_path / "blank.png", tmp_path / "a.npy")
    assert status == 2 and json.loads(out.splitlines()[0])["file"] == str(tmp_path / "blank.png")
    assert json.loads(out.splitlines()[0])["error"].endswith("no digit to classify; a blank scan?")
    status, out, err = run_cli(capsys, "predict", model, tmp_path / "a.npy", tmp_path / "missing.npy")
    assert (status, out) == (2, "") and err == f"distnet: error: {tmp_path / 'missing.npy'}: no such file\n"
    status, out, err = run_cli(capsys, "predict", model, tmp_path / "gone.png", tmp_path / "a.npy", tmp_path / "missing.npy")
    assert (status, out) == (2, "") and err == (f"distnet: error: no such files: {tmp_path / 'gone.png'}, "
                                                f"{tmp_path / 'missing.npy'}\n")
    # A missing model is said first, on stderr only: the missing file was, on stdout too.
    status, out, err = run_cli(capsys, "predict", "--json", tmp_path / "gone.npz", tmp_path / "missing.npy")
    assert (status, out) == (2, "") and err.startswith(f"distnet: error: {tmp_path / 'gone.npz'}: no such model file;")
    (tmp_path / "sub").mkdir()  # as digits/* catches a folder
    status, out, err = run_cli(capsys, "predict", model, tmp_path / "sub", tmp_path / "blank.png")
    assert status == 2 and out == "" and err.splitlines()[-1] == "distnet: error: 2 of 2 files could not be read (said above)"
    status, out, err = run_cli(capsys, "predict", model, tmp_path / "a.npy", tmp_path / "sub")
    assert status == 2 and out.startswith(str(tmp_path / "a.npy"))
    os.mkfifo(tmp_path / "pipe")  # as <(cat digit.png) gives; it was "no such file"
    status, out, err = run_cli(capsys, "predict", model, tmp_path / "pipe", tmp_path / "a.npy")
    assert status == 2 and out.startswith(str(tmp_path / "a.npy")) and err.splitlines()[0] == (
        f"distnet: error: {tmp_path / 'pipe'} is not a file but a pipe or a device; save what it gives to a file "
        f"first (such as: command > digit.png) and give that")


def test_a_file_that_could_not_be_read_is_an_error_still_when_the_reader_goes_away(capsys, model, tmp_path,
                                                                                   monkeypatch):
    """`predict --json blank.png digits.npy | head -1`: exit status 0, and the closing line unsaid."""
    import io
    import sys

    from distnet import cli as command_line

    class ReaderGoneAfterOneLine(io.StringIO):
        def write(self, text):
            if self.getvalue().count("\n") >= 1:
                raise BrokenPipeError
            return super().write(text)

    np.save(tmp_path / "a.npy", ring())
    Image.new("L", (28, 28), 128).save(tmp_path / "blank.png")
    monkeypatch.setattr(command_line, "_drop_output", lambda stream: None)  # pytest's own stdout stays
    monkeypatch.setattr(sys, "stdout", ReaderGoneAfterOneLine())
    status, _, err = run_cli(capsys, "predict", "--json", model, tmp_path / "blank.png", tmp_path / "a.npy")
    assert status == 2 and err.splitlines()[-1] == ("distnet: error: 1 of 2 files could not be read (said above); "
                                                    "the output was closed before the rest were classified")
    monkeypatch.setattr(sys, "stdout", ReaderGoneAfterOneLine())  # every file read: a quiet stop, as before
    status, _, err = run_cli(capsys, "predict", "--json", model, tmp_path / "a.npy", tmp_path / "a.npy")
    assert (status, err) == (0, "")


def test_with_json_every_file_that_cannot_be_read_is_a_line_of_its_own_on_stdout(capsys, model, tmp_path):
    """A missing file, and a single unreadable one, printed nothing on stdout (only the error on stderr)."""
    np.save(tmp_path / "a.npy", ring())
    Image.new("L", (28, 28), 128).save(tmp_path / "blank.png")
    missing, gone, blank = tmp_path / "missing.png", tmp_path / "gone.npy", tmp_path / "blank.png"

    def lines(out):
        return [json.loads(line) for line in out.splitlines()]

    status, out, err = run_cli(capsys, "predict", "--json", model, missing)
    assert (status, err) == (2, f"distnet: error: {missing}: no such file\n")
    assert lines(out) == [{"file": str(missing), "error": f"{missing}: no such file"}]
    status, out, err = run_cli(capsys, "predict", "--json", model, missing, tmp_path / "a.npy", gone)
    assert (status, err) == (2, f"distnet: error: no such files: {missing}, {gone}\n")  # none classified, as ever
    assert lines(out) == [{"file": str(missing), "error": f"{missing}: no such file"},
                          {"file": str(gone), "error": f"{gone}: no such file"}]
    status, out, err = run_cli(capsys, "predict", "--json", model, blank)
    assert status == 2 and err.startswith(f"distnet: error: {blank}: every pixel reads as the same grey")
    assert lines(out) == [{"file": str(blank), "error": err.removeprefix("distnet: error: ").rstrip()}]


def test_a_file_named_as_a_picture_that_is_none_is_said_so_by_its_name(capsys, model, tmp_path):
    (tmp_path / "notes.png").write_bytes(b"\x89PNG\r\n\x1a\n but no picture follows")
    status, _, err = run_cli(capsys, "predict", model, tmp_path / "notes.png")
    # Pillow's own message named "<_io.BufferedReader name='...'>"
    assert status == 2 and err == (f"distnet: error: {tmp_path / 'notes.png'}: not a readable picture (Pillow knows "
                                   f"no picture format in it)\n")


def test_a_float_picture_out_of_0_1_is_refused(tmp_path):
    Image.fromarray(ring().astype(np.float32)).save(tmp_path / "bytes.tiff")  # 0..255 as floats
    with pytest.raises(DataFormatError) as refused:
        read_images(tmp_path / "bytes.tiff")
    assert str(refused.value) == (f"{tmp_path / 'bytes.tiff'}: a float picture's pixels must lie in [0, 1], this "
                                  f"one's run from 0 to 255; scale them into [0, 1] first")


@pytest.mark.parametrize("side", [40, 50])  # 1,600 pixels: Pillow warns; 2,500: Pillow refuses
def test_a_picture_too_large_for_pillow_says_to_scale_it_down(capsys, model, tmp_path, monkeypatch, side):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # as a 20000x20000 picture is to Pillow's real limit
    Image.fromarray(255 - ring(side)).save(tmp_path / "big.png")
    status, out, err = run_cli(capsys, "predict", model, tmp_path / "big.png")
    assert (status, out) == (2, "")
    assert err == (f"distnet: error: {tmp_path / 'big.png'}: the picture has {side * side:,} pixels, too many to "
                   f"read safely; predict takes 28x28 digits: scale it down first (to 28x28, or a few hundred "
                   f"pixels a side)\n")


def test_files_are_read_by_their_content_whatever_their_name(capsys, model, tmp_path):
    Image.fromarray(255 - ring()).save(tmp_path / "digit.png")
    png = (tmp_path / "digit.png").read_bytes()
    for name in ("d8.npy", "d8", "d8.idx"):
        (tmp_path / name).write_bytes(png)
    write_idx(tmp_path / "idx.png", ring()[None])  # an IDX file named as a picture
    Image.fromarray(255 - ring()).save(tmp_path / "digit.pgm")  # Netpbm: begins with "P5\n"
    (tmp_path / "pgm").write_bytes((tmp_path / "digit.pgm").read_bytes())  # read as IDX before
    np.save(tmp_path / "array.npy", ring())
    (tmp_path / "array.gif").write_bytes((tmp_path / "array.npy").read_bytes())
    status, out, _ = run_cli(capsys, "predict", model, tmp_path / "digit.png", tmp_path / "d8.npy", tmp_path / "d8",
                             tmp_path / "d8.idx", tmp_path / "idx.png", tmp_path / "array.gif", tmp_path / "pgm",
                             "--json")
    results = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert [r["file"] for r in results] == [str(tmp_path / name) for name in
                                            ("digit.png", "d8.npy", "d8", "d8.idx", "idx.png[0]", "array.gif", "pgm")]
    expected = Network.load(model).predict(ring().reshape(1, 784) / np.float32(255))[0]
    for r in results:
        assert r["probabilities"] == pytest.approx(expected, abs=1e-6), r["file"]


def test_a_folder_is_refused_with_what_to_give_instead(capsys, model, tmp_path):
    (tmp_path / "img").mkdir()
    status, _, err = run_cli(capsys, "predict", model, tmp_path / "img")
    assert status == 2
    assert err == f"distnet: error: {tmp_path / 'img'} is a folder; give the image files in it (such as " \
                  f"{tmp_path / 'img' / '*.png'})\n"


def test_pickled_npy_files_are_never_loaded_nor_advised_to_be(capsys, model, tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"pixels": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "pickle.npy").write_bytes(pickle.dumps(ring()))  # np.load would unpickle it, asked to
    status, _, err = run_cli(capsys, "predict", model, tmp_path / "objects.npy")
    assert status == 2
    assert err == (f"distnet: error: {tmp_path / 'objects.npy'}: not a readable .npy array (it holds pickled Python "
                   f"objects, and distnet never loads pickled data: save the images as a numeric array)\n")
    status, _, err = run_cli(capsys, "predict", model, tmp_path / "pickle.npy")
    assert status == 2
    assert err == (f"distnet: error: {tmp_path / 'pickle.npy'}: not a readable .npy array (it does not start with "
                   f"the .npy signature \\x93NUMPY)\n")


@pytest.mark.parametrize("paper, ink", [(0, 255), (255, 0)])
@pytest.mark.parametrize("height, width", [(10, 20), (40, 16)])
def test_a_picture_that_is_not_square_keeps_its_proportions(tmp_path, paper, ink, height, width):
    """Made square with its paper's colour, then scaled: a square stays a square (stretched to
    28x28, as before, a 10x20 picture's square came out half as wide as high)."""
    picture = np.full((height, width), paper, np.uint8)
    side = min(height, width) // 2
    top, left = (height - side) // 2, (width - side) // 2
    picture[top:top + side, left:left + side] = ink
    Image.fromarray(picture).save(tmp_path / "square.png")
    inked = pixels_of(tmp_path / "square.png").reshape(28, 28) > 0.5
    rows, columns = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    assert abs(len(rows) - len(columns)) <= 1 and 5 <= len(rows) <= 16
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1 and abs((columns[0] + columns[-1]) / 2 - 13.5) <= 1
    assert not inked[[0, -1]].any() and not inked[:, [0, -1]].any()  # the paper added is paper


def test_images_given_where_the_model_belongs_are_said_to_come_second(capsys, model, tmp_path):
    np.save(tmp_path / "digits.npy", ring())
    status, _, err = run_cli(capsys, "predict", tmp_path / "digits.npy", model)
    assert status == 2 and err == (f"distnet: error: {tmp_path / 'digits.npy'}: not an .npz file (no zip signature); "
                                   f"expected a file written by distnet; it holds images: the model comes first "
                                   f"(distnet predict MODEL FILE...)\n")
    (tmp_path / "notes.txt").write_text("not a model, nor images")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))  # a zip, as a run's checkpoint.npz: not said to hold images
    for other in ("notes.txt", "other.npz"):
        status, _, err = run_cli(capsys, "predict", tmp_path / other, model)
        assert status == 2 and "the model comes first" not in err, err


def test_a_file_name_that_is_not_utf_8_is_printed_as_its_own_bytes_on_a_strict_utf_8_output(model, tmp_path):
    """Under a UTF-8 locale, stdout refuses the surrogates Python holds such a name in: a traceback,
    exit status 1, after (for a training) the run had ended and written every file."""
    import subprocess
    import sys

    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.npy")
    np.save(name, np.full((28, 28), 0.5, np.float32))
    np.save(tmp_path / "café.npy", np.full((28, 28), 0.5, np.float32))
    done = subprocess.run([sys.executable, "-m", "distnet", "predict", str(model), name], capture_output=True,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(os.fsencode(str(tmp_path)) + b"/caf\xe9.npy: ")
    # On an ASCII output, a character it lacks is a backslash escape, as Python writes stderr (not an error).
    done = subprocess.run([sys.executable, "-m", "distnet", "predict", str(model), name, str(tmp_path / "café.npy")],
                          capture_output=True, env={**os.environ, "PYTHONIOENCODING": "ascii"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line.split(b": ")[0] for line in done.stdout.splitlines()[::2]] == [
        os.fsencode(str(tmp_path)) + b"/caf\xe9.npy", os.fsencode(str(tmp_path)) + b"/caf\\xe9.npy"]


def test_the_command_line_leaves_its_output_s_error_handling_as_it_found_it(capsys, model, tmp_path):
    import sys

    np.save(tmp_path / "a.npy", ring())
    before = sys.stdout.errors, sys.stderr.errors
    assert run_cli(capsys, "predict", model, tmp_path / "a.npy")[0] == 0
    assert (sys.stdout.errors, sys.stderr.errors) == before


def test_a_file_whose_name_begins_with_a_dash_is_said_to_be_read_as_an_option(capsys, model, tmp_path, monkeypatch):
    """argparse took it for an unknown option and said "the following arguments are required: FILE"."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "-3.npy", ring())
    with pytest.raises(SystemExit) as refused:  # a usage error, as argparse's
        main(["predict", str(model), "-3.npy"])
    out, err = capsys.readouterr()
    assert (refused.value.code, out) == (2, "") and err.startswith(
        "distnet: error: -3.npy is read as an option; give the file as ./-3.npy (or after --)")
    for words in (["./-3.npy"], ["--", "-3.npy"]):
        status, out, err = run_cli(capsys, "predict", model, *words)
        assert status == 0 and out.split(":")[0].endswith("-3.npy"), err
