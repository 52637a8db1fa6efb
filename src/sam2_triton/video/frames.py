"""The frames of one video, kept as compact as tracking allows.

The tracker reads a frame as SAM2VideoPredictor loads it: Pillow's bicubic resize of the RGB
frame to 1024 x 1024 (``resize_frame``). A frame sent as an image file (JPEG,
PNG) is kept as those bytes and decoded when read, as the reference decodes a folder of JPEG
frames (no EXIF rotation); a frame decoded from a video file, or given as an array, is kept
resized (3 MiB), which loses nothing the tracker reads. Frames may be appended one at a time
(a live stream); all must have the first frame's size.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from sam2_triton.contract import DEFAULT_MAX_IMAGE_PIXELS, IMAGE_SIZE
from sam2_triton.errors import InvalidInputError
from sam2_triton.image.transforms import PIXEL_MEAN, PIXEL_STD, decode_image


class VideoFrames:
    """Frames in order; ``model_input(i)`` is frame i as the encoder's input."""

    def __init__(
        self,
        max_frames: int = 1 << 20,
        max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        max_bytes: int = 1 << 62,
    ) -> None:
        self.max_frames, self.max_pixels, self.max_bytes = max_frames, max_pixels, max_bytes
        self._frames: list[bytes | np.ndarray] = []
        self.height = self.width = 0
        self.nbytes = 0

    @classmethod
    def of_arrays(cls, frames: Sequence[np.ndarray], **limits: int) -> VideoFrames:
        video = cls(**limits)
        for rgb in frames:
            video.append_array(rgb)
        return video

    def __len__(self) -> int:
        return len(self._frames)

    def append_image(self, data: bytes, field: str = "frames") -> None:
        """An encoded frame (JPEG, PNG, ...), checked now and kept as sent."""
        self._check_room(field)
        rgb = _decode_frame(data, self.max_pixels, f"{field}[{len(self)}]")
        self._check_size(rgb.shape[:2], field)
        self._check_bytes(len(data), field)
        self._frames.append(bytes(data))
        self.nbytes += len(data)

    def append_array(self, rgb: np.ndarray, field: str = "frames") -> None:
        """A decoded RGB frame [H, W, 3] uint8, kept resized to 1024 x 1024."""
        self._check_room(field)
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InvalidInputError(field, f"a frame must be [H, W, 3] uint8, not {rgb.shape}")
        self._check_size(rgb.shape[:2], field)
        resized = resize_frame(rgb)
        self._check_bytes(resized.nbytes, field)
        self._frames.append(resized)
        self.nbytes += resized.nbytes

    def model_input(self, index: int) -> np.ndarray:
        """Frame ``index`` as the image encoder's input [1, 3, 1024, 1024] float32."""
        frame = self._frames[index]
        if isinstance(frame, bytes):
            frame = resize_frame(_decode_frame(frame, self.max_pixels, "frames"))
        return normalize_frame(frame)

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` frames (a request that failed half way adds none)."""
        for frame in self._frames[count:]:
            self.nbytes -= len(frame) if isinstance(frame, bytes) else frame.nbytes
        del self._frames[count:]

    def _check_bytes(self, more: int, field: str) -> None:
        if self.nbytes + more > self.max_bytes:
            raise InvalidInputError(
                field,
                f"frame {len(self)} would take the video past the server's {self.max_bytes} "
                "bytes for all videos: send fewer or smaller frames",
            )

    def _check_room(self, field: str) -> None:
        if len(self) >= self.max_frames:
            raise InvalidInputError(
                field, f"a video may have at most {self.max_frames} frames on this server"
            )

    def _check_size(self, hw: tuple[int, int], field: str) -> None:
        if not self._frames:
            self.height, self.width = int(hw[0]), int(hw[1])
        elif (hw[0], hw[1]) != (self.height, self.width):
            raise InvalidInputError(
                field,
                f"frame {len(self)} is {hw[1]}x{hw[0]}, but the video's frames are "
                f"{self.width}x{self.height}",
            )


def _decode_frame(data: bytes, max_pixels: int, field: str) -> np.ndarray:
    try:
        return decode_image(data, max_pixels, apply_exif=False)
    except InvalidInputError as exc:
        raise InvalidInputError(field, exc.problem) from None


def decode_video(data: bytes, video: VideoFrames) -> VideoFrames:
    """Every frame of a video file (MP4, WebM, ...) appended to ``video``, decoded with PyAV
    (FFmpeg) as RGB. The reference decodes video files with decord: its colour conversion may
    differ from FFmpeg's by a level here and there."""
    for rgb in video_arrays(data, video.max_pixels):
        video.append_array(rgb, field="video")
    if not len(video):
        raise InvalidInputError("video", "the file holds no decodable frame")
    return video


def video_arrays(data: bytes, max_pixels: int) -> Iterator[np.ndarray]:
    """A video file's frames as RGB [H, W, 3] uint8, decoded by PyAV (FFmpeg): the frames the
    server tracks (the web app shows the same ones)."""
    import av

    if len(data) == 0:
        raise InvalidInputError("video", "is empty (0 bytes); send the video file's bytes")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise InvalidInputError("video", "the file has no video stream")
            stream = container.streams.video[0]
            if stream.width * stream.height > max_pixels:
                raise InvalidInputError(
                    "video",
                    f"{stream.width}x{stream.height} frames exceed the limit of "
                    f"{max_pixels} pixels",
                )
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
    except InvalidInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - FFmpeg raises many types for a corrupt file
        raise InvalidInputError(
            "video", f"cannot be decoded as a video file ({type(exc).__name__}: {exc})"
        ) from None


def resize_frame(rgb: np.ndarray, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """A video frame (HWC uint8 RGB) -> [1024, 1024, 3] uint8, as SAM2VideoPredictor loads
    frames (sam2/utils/misc.py): Pillow's default (bicubic) resize to the square. Not the image
    predictor's transform: its resize differs, and the masks with it."""
    return np.asarray(Image.fromarray(rgb).convert("RGB").resize((image_size, image_size)))


def normalize_frame(resized: np.ndarray) -> np.ndarray:
    """A resized frame -> the encoder's input [1, 3, 1024, 1024]: /255, then ImageNet mean and
    std in float32, as the reference does."""
    scaled = (resized / 255.0).astype(np.float32).transpose(2, 0, 1)
    return ((scaled - PIXEL_MEAN[:, None, None]) / PIXEL_STD[:, None, None])[None]
