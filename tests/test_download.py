"""`tirg data download` against a local HTTP server on 127.0.0.1 serving archives in each source's real format.

The registry's entries are used as they are, with only the host of their URLs pointed at the
local server (and, where the publisher gives a checksum, the fixture's own checksum in its place).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import stat
import tarfile
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
from fixture_trees import write_fashion200k, write_mitstates, write_tiny_fiq
from hashing_fixtures import write_cub, write_dogs
from PIL import Image

from tirg.cli import main
from tirg.compat.google_tirg import read_original_checkpoint
from tirg.data import load_dataset
from tirg.data.css import ORIGINAL_CSS_FILE
from tirg.download import SOURCES, DownloadError, UnsafeArchiveError, download, status, unpack
from tirg.download.install import ANNOTATIONS_ONLY, DOWNLOADS, MANIFEST, PRESENT, READY
from tirg.hashing.data import load_labeled_images


class FileServer:
    """Serves `files` (URL path -> bytes) with Range support; can drop a connection mid-file or ignore Range."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}  # path -> bytes sent before the connection is closed, once
        self.ignore_range: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                owner.requests.append(("GET", path, self.headers.get("Range")))
                data = owner.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                start, wanted = 0, self.headers.get("Range")
                if wanted and path not in owner.ignore_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                self.wfile.write(body[: owner.drop_after.pop(path, len(body))])  # the server closes the connection after each response

            def refuse(self) -> None:  # recorded, so that a test can see that only GET was sent
                owner.requests.append((self.command, urlsplit(self.path).path, None))
                self.send_error(405)

            do_HEAD = do_POST = do_PUT = do_DELETE = refuse

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def serve(self, name: str, files: dict[str, bytes]):
        """The registry's source `name` with its URLs on this server, serving `files` (part name -> bytes)."""
        parts = []
        for part in SOURCES[name].parts:
            if part.manual:
                parts.append(part)
                continue
            path = urlsplit(part.url).path
            if part.name in files:
                self.files[path] = files[part.name]
                data = files[part.name]
                # The fixture's checksums stand in for the publisher's, so that the verification runs.
                part = replace(
                    part, md5=part.md5 and hashlib.md5(data).hexdigest(), sha256=part.sha256 and hashlib.sha256(data).hexdigest()
                )
            parts.append(replace(part, url=f"{self.base}{path}"))
        return replace(SOURCES[name], parts=tuple(parts))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    file_server = FileServer()
    yield file_server
    file_server.httpd.shutdown()
    file_server.httpd.server_close()


# --- fixture archives in each source's published format ---------------------------------------


def zip_tree(folder: Path, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{prefix}{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def tar_tree(folder: Path, mode: str = "w", prefix: str = "", extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        tar.add(folder, arcname=prefix or ".", recursive=True)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def original_checkpoint(model: str, dataset: str) -> bytes:
    buffer = io.BytesIO()
    opt = argparse.Namespace(model=model, dataset=dataset, embed_dim=512)
    torch.save(
        {"it": 150000, "opt": opt, "model_state_dict": {"img_model.fc.0.weight": torch.zeros(2, 2)}},
        buffer,
        _use_new_zipfile_serialization=False,
    )
    return buffer.getvalue()


def css_zip(tmp: Path) -> bytes:
    root = tmp / "CSSDataset"
    objects = [[{"pos": (0.2, 0.2), "color": "red", "shape": "circle", "size": "large"}]] * 2
    split = {"objects_img": objects, "labels": np.array([0, 1]), "mods": [{"from": [0], "to": [1], "to_str": "make red circle small"}]}
    root.mkdir(parents=True)
    np.save(root / ORIGINAL_CSS_FILE, np.array({"train": split, "test": split}, dtype=object), allow_pickle=True)
    (root / "images").mkdir()
    for name in ("train", "test"):
        for index in range(2):
            Image.new("RGB", (64, 64), "white").save(root / "images" / f"css_{name}_{index:06d}.png")
    return zip_tree(root, "CSSDataset/")


def published_files(name: str, tmp: Path) -> dict[str, bytes]:
    """Part name -> bytes, laid out as the publisher's files are."""
    if name == "tirg-checkpoints":
        return {f"checkpoint_{d}.pth": original_checkpoint("tirg", d) for d in ("css3d", "fashion200k", "mitstates")}
    if name == "css-original":
        return {"CSS.zip": css_zip(tmp)}
    if name == "mitstates":
        return {"release_dataset.zip": zip_tree(write_mitstates(tmp / "release_dataset"), "release_dataset/")}
    if name == "fashioniq":
        tree = write_tiny_fiq(tmp / "fiq")
        return {f"fashioniq_{p.name}": p.read_bytes() for p in tree.rglob("*.json")}
    if name == "cub":  # attributes.txt lies beside CUB_200_2011/ in the published archive
        cub = tar_tree(
            write_cub(tmp / "CUB_200_2011", n_classes=2, per_class=3, n_train_per_class=2),
            "w:gz",
            "CUB_200_2011",
            {"attributes.txt": b"1 has_bill_shape::curved\n"},
        )
        return {"CUB_200_2011.tgz": cub}
    if name == "stanford-dogs":
        dogs = write_dogs(tmp / "dogs")
        (dogs / "file_list.mat").write_bytes((dogs / "train_list.mat").read_bytes())
        lists = tmp / "lists"
        lists.mkdir()
        for mat in ("file_list.mat", "train_list.mat", "test_list.mat"):
            (dogs / mat).rename(lists / mat)
        return {"stanford_dogs_images.tar": tar_tree(dogs / "Images", prefix="Images"), "stanford_dogs_lists.tar": tar_tree(lists)}
    raise AssertionError(name)


def loads(name: str, path: Path) -> int:
    """Items the project's own reader finds in the laid-out folder."""
    if name == "tirg-checkpoints":
        return sum(read_original_checkpoint(p).model_name == "tirg" for p in path.glob("*.pth"))
    if name in ("cub", "stanford-dogs"):
        return len(load_labeled_images(SOURCES[name].check, path, "train"))
    if name == "fashioniq":  # no images: the annotated queries are counted, none can be loaded
        return sum(load_dataset("fashioniq", path, "test", skip_missing_images=True).annotated.values())
    return len(load_dataset(SOURCES[name].check, path, "test").queries)


# --- the tests ------------------------------------------------------------------------------------

AUTOMATIC = ["tirg-checkpoints", "css-original", "mitstates", "fashioniq", "cub", "stanford-dogs"]
# What each fixture holds: checkpoints, CSS test queries, MIT-States test queries (2+1 glass, 3x2 sand),
# FashionIQ val queries, CUB train images (2 classes x 2), Stanford Dogs train images (3 breeds x 3).
EXPECTED_ITEMS = {"tirg-checkpoints": 3, "css-original": 1, "mitstates": 9, "fashioniq": 4, "cub": 4, "stanford-dogs": 9}


@pytest.mark.parametrize("name", AUTOMATIC)
def test_fresh_download_lays_out_what_the_loader_reads_and_a_second_call_does_nothing(server, tmp_path, name):
    source = server.serve(name, published_files(name, tmp_path / "published"))
    root = tmp_path / "root"
    result = download(name, root, {name: source}, retries=0)
    target = root / SOURCES[name].folder
    assert result.path == target
    assert result.status == (ANNOTATIONS_ONLY if name == "fashioniq" else READY)
    assert loads(name, target) == EXPECTED_ITEMS[name]
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest["source"] == name and manifest["status"] == result.status
    assert sorted(p.name for p in root.iterdir()) == sorted([DOWNLOADS, SOURCES[name].folder])  # no staging left
    assert all(method == "GET" and byte_range is None for method, _, byte_range in server.requests)
    assert len(server.requests) == len(source.parts)
    assert status(source, root) == result.status

    again = download(name, root, {name: source}, retries=0)
    assert again.status == PRESENT and len(server.requests) == len(source.parts)  # nothing fetched, nothing checked


def test_cub_archive_keeps_only_the_data_set_folder(server, tmp_path):
    source = server.serve("cub", published_files("cub", tmp_path / "published"))
    target = download("cub", tmp_path, {"cub": source}, retries=0).path
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST, "image_class_labels.txt", "images", "images.txt", "train_test_split.txt"]


def test_fashioniq_says_the_images_are_not_distributed(server, tmp_path):
    source = server.serve("fashioniq", published_files("fashioniq", tmp_path / "published"))
    result = download("fashioniq", tmp_path / "root", {"fashioniq": source}, retries=0)
    text = "\n".join(result.lines)
    assert f"{result.path}/images/<ASIN>.jpg" in text and f"tirg data check --dataset fashionIQ --dataset_path {result.path}" in text
    assert sorted(p.name for p in (result.path / "captions").iterdir())[0] == "cap.dress.test.json"


def test_resume_after_the_connection_drops_mid_file(server, tmp_path):
    data = published_files("mitstates", tmp_path / "published")
    source = server.serve("mitstates", data)
    path = urlsplit(source.parts[0].url).path
    half = len(data["release_dataset.zip"]) // 2
    server.drop_after[path] = half
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match=f"{half:,} bytes are kept in .*release_dataset.zip.part"):
        download("mitstates", root, {"mitstates": source}, retries=0)
    assert (root / DOWNLOADS / "release_dataset.zip.part").stat().st_size == half
    assert not (root / "mitstates").exists()
    assert status(source, root) == "partial download (resumable)"

    result = download("mitstates", root, {"mitstates": source}, retries=0)
    assert server.requests[-1] == ("GET", path, f"bytes={half}-")
    assert (root / DOWNLOADS / "release_dataset.zip").read_bytes() == data["release_dataset.zip"]
    assert result.status == READY and loads("mitstates", result.path) == EXPECTED_ITEMS["mitstates"]


def test_a_dropped_connection_is_resumed_within_one_call(server, tmp_path):
    data = published_files("css-original", tmp_path / "published")
    source = server.serve("css-original", data)
    path = urlsplit(source.parts[0].url).path
    server.drop_after[path] = 100
    result = download("css-original", tmp_path / "root", {"css-original": source}, retries=1)
    assert [r[2] for r in server.requests] == [None, "bytes=100-"]
    assert result.status == READY


def test_a_server_that_ignores_range_restarts_the_file(server, tmp_path):
    data = published_files("css-original", tmp_path / "published")
    source = server.serve("css-original", data)
    server.ignore_range.add(urlsplit(source.parts[0].url).path)
    downloads = tmp_path / "root" / DOWNLOADS
    downloads.mkdir(parents=True)
    (downloads / "CSS.zip.part").write_bytes(b"stale bytes")
    download("css-original", tmp_path / "root", {"css-original": source}, retries=0)
    assert (downloads / "CSS.zip").read_bytes() == data["CSS.zip"]


@pytest.mark.parametrize("checksum", ["md5", "sha256"])
def test_checksum_mismatch_keeps_the_file_aside_and_places_nothing(server, tmp_path, checksum):
    source = server.serve("cub", published_files("cub", tmp_path / "published"))
    wrong = replace(source.parts[0], **{"md5": None, checksum: "0" * (32 if checksum == "md5" else 64)})
    source = replace(source, parts=(wrong,))
    root = tmp_path / "root"
    with pytest.raises(
        DownloadError, match=f"its {checksum.upper()} is [0-9a-f]+, the publisher gives 0+; the file is kept as .*CUB_200_2011.tgz.corrupt"
    ):
        download("cub", root, {"cub": source}, retries=0)
    assert sorted(p.name for p in (root / DOWNLOADS).iterdir()) == ["CUB_200_2011.tgz.corrupt"]
    assert sorted(p.name for p in root.iterdir()) == [DOWNLOADS]
    assert status(source, root) == "checksum mismatch (see downloads/*.corrupt)"


def test_a_size_the_server_contradicts_is_refused_before_writing(server, tmp_path):
    data = published_files("css-original", tmp_path / "published")
    source = server.serve("css-original", data)
    source = replace(source, parts=(replace(source.parts[0], size=len(data["CSS.zip"]) + 1),))
    with pytest.raises(DownloadError, match=f"announces {len(data['CSS.zip']):,} bytes, the publisher gives"):
        download("css-original", tmp_path, {"css-original": source}, retries=0)
    assert list((tmp_path / DOWNLOADS).iterdir()) == []


def test_404_names_the_url(server, tmp_path):
    source = server.serve("mitstates", {})
    with pytest.raises(DownloadError, match=re.escape(source.parts[0].url) + ": HTTP 404 .*moved.* can be put at .*release_dataset.zip"):
        download("mitstates", tmp_path, {"mitstates": source}, retries=2)
    assert len(server.requests) == 1  # an HTTP error is an answer, not a dropped connection: no retry
    assert list((tmp_path / DOWNLOADS).iterdir()) == []


def _tar_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        good = tarfile.TarInfo("CUB_200_2011/images.txt")
        good.size = 3
        tar.addfile(good, io.BytesIO(b"1 a"))
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        data = b"" if kind != tarfile.REGTYPE else b"evil"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip_member(name: str, mode: int = stat.S_IFREG | 0o644, data: bytes = b"evil") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("release_dataset/README.txt", "fine")
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        zf.writestr(info, data)
    return buffer.getvalue()


UNSAFE = {
    "tar: .. path": ("tar", _tar_member("CUB_200_2011/../../evil.txt"), "outside the target"),
    "tar: absolute path": ("tar", _tar_member("/tmp/evil.txt"), "absolute path"),
    "tar: symbolic link": ("tar", _tar_member("CUB_200_2011/link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
    "tar: hard link": ("tar", _tar_member("CUB_200_2011/hard", tarfile.LNKTYPE, "../../evil.txt"), "is a link"),
    "tar: device": ("tar", _tar_member("CUB_200_2011/dev", tarfile.CHRTYPE), "device"),
    "zip: .. path": ("zip", _zip_member("release_dataset/../../evil.txt"), "outside the target"),
    "zip: backslash .. path": ("zip", _zip_member("release_dataset\\..\\..\\evil.txt"), "outside the target"),
    "zip: absolute path": ("zip", _zip_member("/evil.txt"), "absolute path"),
    "zip: symbolic link": ("zip", _zip_member("release_dataset/link", stat.S_IFLNK | 0o777, b"/etc/passwd"), "symbolic link"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archives_are_refused(tmp_path, case):
    kind, data, reason = UNSAFE[case]
    archive = tmp_path / "downloads" / f"archive.{kind}"
    archive.parent.mkdir()
    archive.write_bytes(data)
    dest = tmp_path / "a" / "b" / "target"
    with pytest.raises(UnsafeArchiveError, match=reason):
        unpack(archive, kind, dest, "CUB_200_2011" if kind == "tar" else "release_dataset")
    assert not list(tmp_path.rglob("evil.txt"))


def test_an_unsafe_archive_places_nothing(server, tmp_path):
    source = server.serve("mitstates", {"release_dataset.zip": _zip_member("release_dataset/../../evil.txt")})
    root = tmp_path / "root"
    with pytest.raises(UnsafeArchiveError, match="release_dataset/../../evil.txt"):
        download("mitstates", root, {"mitstates": source}, retries=0)
    assert sorted(p.name for p in root.iterdir()) == [DOWNLOADS]
    assert not list(tmp_path.rglob("evil.txt"))


@pytest.mark.parametrize(
    "files, message",
    [
        ({"release_dataset/README.txt": "no images"}, "(?s)does not pass the check.*image folder not found"),
        ({"other_top/images/ripe apple/1.jpg": "x"}, "holds no files under release_dataset/ .*other_top.*layout has changed"),
    ],
)
def test_an_archive_that_fails_the_check_places_nothing(server, tmp_path, files, message):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    source = server.serve("mitstates", {"release_dataset.zip": buffer.getvalue()})
    with pytest.raises(DownloadError, match=message):
        download("mitstates", tmp_path, {"mitstates": source}, retries=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [DOWNLOADS]


def test_a_folder_not_written_by_download_is_left_alone(server, tmp_path):
    source = server.serve("mitstates", published_files("mitstates", tmp_path / "published"))
    (tmp_path / "root" / "mitstates").mkdir(parents=True)
    (tmp_path / "root" / "mitstates" / "mine.txt").write_text("the user's")
    with pytest.raises(DownloadError, match="not written by `tirg data download mitstates`"):
        download("mitstates", tmp_path / "root", {"mitstates": source}, retries=0)
    assert (tmp_path / "root" / "mitstates" / "mine.txt").read_text() == "the user's"
    assert server.requests == []


def test_fashion200k_manual_steps_then_layout_through_the_cli(tmp_path, capsys):
    """Drive files are placed by hand; test_queries.txt is already in downloads/, so nothing goes to the network."""
    published = write_fashion200k(tmp_path / "published")
    root = tmp_path / "root"
    downloads = root / DOWNLOADS
    downloads.mkdir(parents=True)
    (downloads / "test_queries.txt").write_bytes((published / "test_queries.txt").read_bytes())

    assert main(["data", "download", "fashion200k", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "https://drive.google.com/open?id=0B4Eo9mft9jwoamlYWFZBSHFzV3c" in out
    assert f"{downloads / 'fashion200k_labels'}" in out and f"{downloads / 'women.tar.gz'}" in out
    assert f"{root / 'fashion200k'}/labels/<category>_<split>_detect_all.txt" in out
    assert not (root / "fashion200k").exists()
    assert status(SOURCES["fashion200k"], root) == "downloaded 1 of 3 files; needs manual steps"

    (published / "labels").rename(downloads / "fashion200k_labels")
    (downloads / "women.tar.gz").write_bytes(tar_tree(published / "women", "w:gz", "women"))
    assert main(["data", "download", "fashion200k", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and f"tirg train --dataset fashion200k --dataset_path {root / 'fashion200k'}" in out
    dataset = load_dataset("fashion200k", root / "fashion200k", "test")
    assert len(dataset.queries) == 3 and all(p.is_file() for p in dataset.image_files)
    assert (downloads / "fashion200k_labels").is_dir() and (downloads / "women.tar.gz").is_file()  # the user's files stay

    assert main(["data", "download", "--list", "--root", str(root)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert sorted(rows) == sorted(SOURCES)
    assert "  ready  " in rows["fashion200k"] and "not downloaded" in rows["mitstates"]
    assert "not downloaded" in rows["cub"] and str(root / "CUB_200_2011") in rows["cub"]


def test_the_registry_holds_the_published_urls():
    urls = {part.url for source in SOURCES.values() for part in source.parts}
    for expected in (
        "https://storage.googleapis.com/image_retrieval_css/pretrained_models/checkpoint_css3d.pth",
        "https://storage.googleapis.com/image_retrieval_css/CSS.zip",
        "https://storage.googleapis.com/image_retrieval_css/test_queries.txt",
        "http://wednesday.csail.mit.edu/joseph_result/state_and_transformation/release_dataset.zip",
        "http://vision.stanford.edu/aditya86/ImageNetDogs/lists.tar",
    ):
        assert expected in urls
    fiq = [part for part in SOURCES["fashioniq"].parts]
    assert len(fiq) == 18 and {part.dest.split("/")[0] for part in fiq} == {"captions", "image_splits"}
    for source in SOURCES.values():
        assert len({part.name for part in source.parts}) == len(source.parts)
