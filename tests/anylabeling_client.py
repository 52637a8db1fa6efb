"""X-AnyLabeling's own remote-server client, headless, as the app drives it: run with the
Python of the x-anylabeling-cvhub venv (``make x-anylabeling``), never this project's.

    python anylabeling_client.py WORKDIR SERVER_URL IMAGE MODEL_INDEX MARKS_JSON [video]

prints {"models": [...], "shapes": [{label, shape_type, points, score}], "messages": [...]};
with ``video``: IMAGE is a frame in a folder of frames, the model a video one, and the client
prompts and then propagates (``run_tracker``), as its "run" does with a labelling widget; the
shapes it saves for each frame are captured where it saves them (``saved``: file -> shapes).
"""

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

workdir, server_url, image_path, model_index, marks = sys.argv[1:6]
video = sys.argv[6:7] == ["video"]
os.environ["HOME"] = workdir  # its settings file (~/.xanylabelingrc) lives there

from PyQt6.QtGui import QImage  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

app = QApplication([])

from anylabeling import config as xconfig  # noqa: E402

rc = os.path.join(workdir, "xanylabelingrc.yaml")
with open(rc, "w") as f:
    f.write(f"remote_server_settings:\n  server_url: {server_url}\n  api_key: null\n")
xconfig.current_config_file = rc

from anylabeling.services.auto_labeling.remote_server import RemoteServer  # noqa: E402

messages: list[str] = []
model = RemoteServer(
    {"type": "remote_server", "name": "remote_server", "display_name": "Remote"},
    on_message=messages.append,
)
models = model.get_available_models()
model.set_model_id(list(models)[int(model_index)])
model.set_auto_labeling_marks(json.loads(marks))


def plain(shapes) -> list[dict]:
    return [
        {
            "label": s.label,
            "shape_type": s.shape_type,
            "points": [[p.x(), p.y()] for p in s.points],
            "score": s.score,
            "group_id": s.group_id,
        }
        for s in shapes
    ]


saved: dict[str, list] = {}
if video:
    from types import SimpleNamespace

    import anylabeling.views.labeling.utils.batch as batch

    # where the app writes each frame's shapes (its label files): captured instead
    batch.save_auto_labeling_result = lambda widget, path, result: saved.__setitem__(
        os.path.basename(path), plain(result.shapes)
    )
    folder = os.path.dirname(image_path)
    frames = sorted(os.listdir(folder), key=lambda name: int(name.split(".")[0]))
    model._widget = SimpleNamespace(
        image_list=[os.path.join(folder, name) for name in frames],
        _progress_dialog=None,
        _batch_processing_active=False,
        cancel_processing=False,
    )
    # a click (the marks so far), then "run": the same marks again, and the tracker
    prompted = model.predict_shapes(QImage(image_path), image_path=image_path)
    model.predict_shapes(QImage(image_path), image_path=image_path, run_tracker=True)
    shapes = plain(prompted.shapes)
else:
    result = model.predict_shapes(QImage(image_path), image_path=image_path)
    shapes = plain(result.shapes)
print(json.dumps({"models": list(models), "shapes": shapes, "saved": saved, "messages": messages}))
