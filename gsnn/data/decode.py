"""Image decoding with Pillow: encoded JPEG/PNG bytes or files to ``uint8 [N, H, W, 3]``
arrays, with optional center-crop and resize; an undecodable or odd-sized file raises
:class:`~gsnn.data.dataset.DataError` naming it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gsnn.data.dataset import DataError, ImageSize


#: Show a progress bar when decoding more files than this.
PROGRESS_THRESHOLD = 1000


# --------------------------------------------------------------------------------------
# Image decoding (Pillow)
# --------------------------------------------------------------------------------------


def _as_size(image_size: ImageSize | None) -> tuple[int, int] | None:
    """Normalise ``image_size`` to ``(height, width)``."""
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)):
        size = (int(image_size), int(image_size))
    else:
        size = tuple(int(s) for s in image_size)
        if len(size) != 2:
            raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    if min(size) <= 0:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return size  # type: ignore[return-value]


def _decode_image(
    source: bytes | Path, what: str, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode one image file to ``uint8 [H, W, 3]`` RGB.

    Args:
        source: the encoded bytes, or a file path.
        what: name of the file for error messages.
        size: ``(height, width)``: center-crop to that aspect ratio and resize.

    Raises:
        DataError: the file cannot be decoded.
    """
    from PIL import Image, ImageOps

    try:
        fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        with Image.open(fp) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = ImageOps.fit(img, (size[1], size[0]), method=Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(
            f"{what}: cannot decode image ({type(err).__name__}: {err}); expected a "
            "readable JPEG or PNG file. Replace or delete the file and load again."
        ) from err


def _resize_array(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Center-crop (to the target aspect ratio) and resize ``uint8 [N, H, W, C]``."""
    from PIL import Image, ImageOps

    if images.shape[1:3] == size:
        return images
    out = np.empty((len(images), size[0], size[1], images.shape[3]), np.uint8)
    for i, image in enumerate(images):
        img = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
        img = ImageOps.fit(img, (size[1], size[0]), method=Image.Resampling.BILINEAR)
        out[i] = np.asarray(img).reshape(out.shape[1:])
    return out


def _decode_all(
    files: Sequence[tuple[str, bytes | Path]],
    size: tuple[int, int] | None,
    desc: str,
    progress: bool = True,
) -> np.ndarray:
    """Decode files into one ``uint8 [N, H, W, 3]`` array (all images the same size)."""
    from tqdm import tqdm

    out: np.ndarray | None = None
    first = ""
    with tqdm(
        total=len(files), desc=desc, unit="img", disable=not progress or len(files) <= PROGRESS_THRESHOLD,
    ) as bar:
        for i, (what, source) in enumerate(files):
            image = _decode_image(source, what, size)
            if out is None:
                out = np.empty((len(files),) + image.shape, np.uint8)
                first = what
            elif image.shape != out.shape[1:]:
                raise DataError(
                    f"{what}: image is {image.shape[1]}x{image.shape[0]} (WxH) but {first} "
                    f"is {out.shape[2]}x{out.shape[1]}; all images must have the same size. "
                    "Resize them, or pass image_size to center-crop and resize them "
                    "while loading."
                )
            out[i] = image
            bar.update(1)
    if out is None:
        shape = (0,) + (size if size else (0, 0)) + (3,)
        out = np.zeros(shape, np.uint8)
    return out
