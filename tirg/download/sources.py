"""The registry of `tirg data download`: one `Source` per data set or model release, as published.

URLs are the ones the original projects document (google/tirg's download_script.sh and README,
github.com/xthan/fashion-200k, XiaoxiaoGuo/fashion-iq, the MIT-States, Caltech and Stanford
pages). Sizes and checksums are filled in only where the publisher gives them; a download is
always checked against the length the server announces.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("file", "zip", "tar", "folder")


@dataclass(frozen=True)
class Part:
    """One published file of a source, and where it goes in the source's folder.

    kind: "file" is copied to `dest` (a path); "zip" and "tar" (any compression) are unpacked into
    the folder `dest` ("" = the source's folder), without their top folder `strip` when one is
    given (members outside it are skipped); "folder" (manual parts only) has its files copied into
    `dest`. A `manual` part's `url` is a page for a browser: the user places the file at
    `<root>/downloads/<name>` and `what` says what to fetch there.
    """

    url: str
    name: str
    kind: str = "file"
    dest: str = ""
    strip: str = ""
    manual: bool = False
    what: str = ""
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class Source:
    """A data set or model release: its parts, the folder they make under --root, and its check.

    check: a `tirg data check` data set name (fashion200k, mitstates, fashioniq, css_original), a
    hashing data set name (CUB, Stanford_Dogs), or "checkpoints" (each .pth read as an original
    TIRG checkpoint). `use` is the command that reads the result ({path}: its folder, {root}: --root).
    `images_note` is set where the images are not distributed: the annotations are placed although
    the check misses the images, and the note ({path}: the folder) says where the user's go.
    """

    name: str
    title: str
    folder: str
    parts: tuple[Part, ...]
    check: str
    use: str
    layout: tuple[str, ...] = ()
    images_note: str = ""


TIRG_BUCKET = "https://storage.googleapis.com/image_retrieval_css"
# FashionIQ's annotation files at the commit the project's copy (../shared/data/fashioniq) came from.
FASHIONIQ_RAW = "https://raw.githubusercontent.com/XiaoxiaoGuo/fashion-iq/f71b16c3b09ef03b02c0fed160fa072fb3b8aa16"
FASHIONIQ_CATEGORIES = ("dress", "shirt", "toptee")
FASHIONIQ_SPLITS = ("train", "val", "test")
FASHION200K_DRIVE = "https://drive.google.com/open?id=0B4Eo9mft9jwoamlYWFZBSHFzV3c"
TIRG_CHECKPOINTS = ("checkpoint_css3d.pth", "checkpoint_fashion200k.pth", "checkpoint_mitstates.pth")


def _fashioniq_parts() -> tuple[Part, ...]:
    parts = []
    for folder, stem in (("captions", "cap"), ("image_splits", "split")):
        for category in FASHIONIQ_CATEGORIES:
            for split in FASHIONIQ_SPLITS:
                file = f"{stem}.{category}.{split}.json"
                parts.append(Part(f"{FASHIONIQ_RAW}/{folder}/{file}", f"fashioniq_{file}", dest=f"{folder}/{file}"))
    return tuple(parts)


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "tirg-checkpoints",
            "TIRG's released models (CSS R@1 0.760, Fashion200k 0.161, MIT-States 0.132)",
            "tirg-checkpoints",
            tuple(Part(f"{TIRG_BUCKET}/pretrained_models/{file}", file, dest=file) for file in TIRG_CHECKPOINTS),
            check="checkpoints",
            use="tirg import-checkpoint {path}/checkpoint_css3d.pth --dataset_path {root}/CSSDataset --out "
            "checkpoints/css3d.pth (after css-original)",
            layout=tuple(f"{file}" for file in TIRG_CHECKPOINTS),
        ),
        Source(
            "css-original",
            "TIRG's CSS data set (CSS.zip: css_toy_dataset_novel2_small.dup.npy and images/)",
            "CSSDataset",
            (Part(f"{TIRG_BUCKET}/CSS.zip", "CSS.zip", kind="zip", strip="CSSDataset"),),
            check="css_original",
            use="tirg train --dataset css_original --dataset_path {path}",
            layout=("css_toy_dataset_novel2_small.dup.npy", "images/css_<split>_<id:06d>.png"),
        ),
        Source(
            "fashion200k",
            "Fashion200k (labels and women.tar.gz by hand from Google Drive; TIRG's test_queries.txt fetched)",
            "fashion200k",
            (
                Part(f"{TIRG_BUCKET}/test_queries.txt", "test_queries.txt", dest="test_queries.txt"),
                Part(
                    FASHION200K_DRIVE,
                    "fashion200k_labels",
                    kind="folder",
                    dest="labels",
                    manual=True,
                    what="the folder `labels` (10 files <category>_<train|test>_detect_all.txt; unzip it if Drive hands you a zip)",
                ),  # fmt: skip
                Part(
                    FASHION200K_DRIVE,
                    "women.tar.gz",
                    kind="tar",
                    manual=True,
                    what="`women.tar.gz` (about 5.9 GB: the cropped images TIRG uses)",
                ),
            ),
            check="fashion200k",
            use="tirg train --dataset fashion200k --dataset_path {path}",
            layout=("labels/<category>_<split>_detect_all.txt", "women/<category>/<kind>/<id>/<id>_<n>.jpeg", "test_queries.txt"),
        ),
        Source(
            "mitstates",
            "MIT-States (release_dataset.zip)",
            "mitstates",
            (
                Part(
                    "http://wednesday.csail.mit.edu/joseph_result/state_and_transformation/release_dataset.zip",
                    "release_dataset.zip",
                    kind="zip",
                    strip="release_dataset",
                ),  # fmt: skip
            ),
            check="mitstates",
            use="tirg train --dataset mitstates --dataset_path {path}",
            layout=("images/<adjective> <noun>/*.jpg",),
        ),
        Source(
            "fashioniq",
            "FashionIQ annotations (captions/, image_splits/); the images are not distributed",
            "fashionIQ",
            _fashioniq_parts(),
            check="fashioniq",
            use="tirg train --dataset fashionIQ --dataset_path {path}",
            layout=("captions/cap.<category>.<split>.json", "image_splits/split.<category>.<split>.json", "images/<ASIN>.jpg (yours)"),
            images_note=(
                "FashionIQ's images are not distributed with the annotations (the product photos are fetched from their "
                "URLs, and many have gone): place yours as {path}/images/<ASIN>.jpg, then run "
                "`tirg data check --dataset fashionIQ --dataset_path {path}`"
            ),
        ),
        Source(
            "cub",
            "CUB-200-2011 (CUB_200_2011.tgz from CaltechDATA, 1.1 GB)",
            "CUB_200_2011",
            (
                Part(
                    "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
                    "CUB_200_2011.tgz",
                    kind="tar",
                    strip="CUB_200_2011",
                    md5="97eceeb196236b17998738112f37df78",  # the checksum CaltechDATA lists for the file
                ),  # fmt: skip
            ),
            check="CUB",
            use="tirg hash train --dataset_name CUB --dataset_path {path}",
            layout=("images.txt", "image_class_labels.txt", "train_test_split.txt", "images/<class>/<file>.jpg"),
        ),
        Source(
            "stanford-dogs",
            "Stanford Dogs (images.tar and lists.tar)",
            "stanford_dogs",
            (
                Part("http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar", "stanford_dogs_images.tar", kind="tar"),
                Part("http://vision.stanford.edu/aditya86/ImageNetDogs/lists.tar", "stanford_dogs_lists.tar", kind="tar"),
            ),
            check="Stanford_Dogs",
            use="tirg hash train --dataset_name Stanford_Dogs --dataset_path {path}",
            layout=("Images/<synset>-<breed>/<file>.jpg", "train_list.mat", "test_list.mat"),
        ),
    )
}
