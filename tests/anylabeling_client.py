"""X-AnyLabeling's own remote-server client, headless, as the app drives it: run with the
Python of the x-anylabeling-cvhub venv (``make x-anylabeling``), never this project's.

    python anylabeling_client.py WORKDIR SERVER_URL IMAGE MODEL_INDEX MARKS_JSON

prints {"models": [...], "shapes": [{label, shape_type, points, score}], "messages": [...]}.
"""

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

workdir, server_url, image_path, model_index, marks = sys.argv[1:6]
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
result = model.predict_shapes(QImage(image_path), image_path=image_path)
shapes = [
    {
        "label": s.label,
        "shape_type": s.shape_type,
        "points": [[p.x(), p.y()] for p in s.points],
        "score": s.score,
    }
    for s in result.shapes
]
print(json.dumps({"models": list(models), "shapes": shapes, "messages": messages}))
