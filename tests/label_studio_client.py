"""Label Studio driven through its own API and SDK (label-studio-sdk, in Label Studio's venv:
``make label-studio``), as a person using the gateway as its ML backend would:

    python label_studio_client.py OUT LABEL_STUDIO_URL EMAIL PASSWORD TOKEN GATEWAY IMAGE [VIDEO]

1. logs in and allows legacy API tokens (1.23 disables them by default), so that the token
   ``TOKEN`` (LABEL_STUDIO_USER_TOKEN) authorises the SDK and the gateway's image fetches;
2. creates a project with smart tools, imports IMAGE as a file (a task whose image is an
   ``/data/upload/…`` URL, fetched by the gateway with the token);
3. connects the gateway as an interactive ML backend (Label Studio calls /health and /setup);
4. asks for a prediction as the page does when a person clicks with the smart keypoint tool
   (``/api/ml/ID/interactive-annotating``: Label Studio calls the gateway's /predict);
5. turns on "retrieve predictions automatically" and opens the task (Label Studio calls
   /predict without a context: pre-annotation);
6. decodes every brush RLE with the SDK (``label_studio_sdk.converter.brush.decode_rle``).

Writes OUT/answer.json (the regions without their RLE) and OUT/<name>.npy (each decoded alpha).
With VIDEO (an MP4): a second project with ``VideoRectangle``, the video uploaded, and a
tracking request as the page sends one for a region's keyframe (its ``videorectangle`` region
in the context); the answer's regions go to OUT/video.json.
"""

import json
import sys
from pathlib import Path

import numpy as np
import requests
from label_studio_sdk import LabelStudio
from label_studio_sdk.converter.brush import decode_rle

out, url, email, password, token, gateway, image = sys.argv[1:8]
video = sys.argv[8] if len(sys.argv) > 8 else None
out_dir = Path(out)
LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image"><Label value="cup"/></BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true"><Label value="cup"/></KeyPointLabels>
</View>"""

# 1. a session login, then legacy tokens on (Organization > API token settings)
session = requests.Session()
session.get(f"{url}/user/login/", timeout=30)
login = session.post(
    f"{url}/user/login/",
    data={
        "email": email,
        "password": password,
        "csrfmiddlewaretoken": session.cookies["csrftoken"],
    },  # noqa: E501
    headers={"Referer": f"{url}/user/login/"},
    timeout=30,
)
assert login.ok, login.status_code
settings = session.post(
    f"{url}/api/jwt/settings",
    json={"legacy_api_tokens_enabled": True},
    headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": url},
    timeout=30,
)
assert settings.ok, (settings.status_code, settings.text)
auth = {"Authorization": f"Token {token}"}

# 2. a project and a task from an uploaded file
ls = LabelStudio(base_url=url, api_key=token)
project = ls.projects.create(title="sam2-triton", label_config=LABEL_CONFIG)
with open(image, "rb") as f:
    imported = requests.post(
        f"{url}/api/projects/{project.id}/import",
        files={"file": ("coffee.png", f, "image/png")},
        headers=auth,
        timeout=60,
    )
assert imported.ok, (imported.status_code, imported.text)
(task,) = list(ls.tasks.list(project=project.id))

# 3. the gateway as the project's interactive backend
backend = ls.ml.create(project=project.id, url=gateway, title="sam2-triton", is_interactive=True)

# 4. a click with the smart keypoint tool, at (50 %, 50 %) of the 300 x 200 image
keypoint = {
    "id": "click1",
    "type": "keypointlabels",
    "from_name": "click",
    "to_name": "image",
    "original_width": 300,
    "original_height": 200,
    "image_rotation": 0,
    "origin": "manual",
    "is_positive": True,
    "value": {"x": 50.0, "y": 50.0, "width": 0.6, "keypointlabels": ["cup"]},
}
raw = ls.ml.with_raw_response.predict_interactive(
    backend.id, task=task.id, context={"result": [keypoint]}
)
interactive = raw.response.json()  # {"data": the backend's first prediction}
assert "data" in interactive and interactive["data"].get("result"), interactive

# 5. pre-annotation: predictions retrieved when the task is opened
ls.projects.update(project.id, evaluate_predictions_automatically=True)
opened = requests.get(f"{url}/api/tasks/{task.id}", headers=auth, timeout=300).json()
predictions = list(ls.predictions.list(task=task.id))


# 6. every brush decoded by the SDK
def keep(name: str, region: dict) -> dict:
    alpha = decode_rle(region["value"]["rle"]).reshape(
        region["original_height"], region["original_width"], 4
    )[..., 3]
    np.save(out_dir / f"{name}.npy", alpha)
    return {k: v for k, v in region.items() if k != "value"} | {
        "labels": region["value"].get("brushlabels"),
        "format": region["value"].get("format"),
    }


answer = {
    "task_image": task.data["image"],
    "backend": {"state": ls.ml.get(backend.id).state},
    "interactive": keep("interactive", interactive["data"]["result"][0]),
    "preannotations": [
        {
            "model_version": p.model_version,
            "score": p.score,
            "regions": [keep(f"pre_{i}_{j}", r) for j, r in enumerate(p.result)],
        }
        for i, p in enumerate(predictions)
    ],  # fmt: skip
    "opened_task_predictions": len(opened.get("predictions", [])),
}
(out_dir / "answer.json").write_text(json.dumps(answer, default=str))

if video:
    VIDEO_CONFIG = """<View>
  <Labels name="videoLabels" toName="video"><Label value="square"/></Labels>
  <Video name="video" value="$video" framerate="10"/>
  <VideoRectangle name="box" toName="video" smart="true"/>
</View>"""
    clip = ls.projects.create(title="sam2-triton video", label_config=VIDEO_CONFIG)
    with open(video, "rb") as f:
        imported = requests.post(
            f"{url}/api/projects/{clip.id}/import",
            files={"file": ("clip.mp4", f, "video/mp4")},
            headers=auth,
            timeout=60,
        )
    assert imported.ok, (imported.status_code, imported.text)
    (clip_task,) = list(ls.tasks.list(project=clip.id))
    clip_backend = ls.ml.create(
        project=clip.id, url=gateway, title="sam2-triton", is_interactive=True
    )
    region = {
        "id": "square1",
        "type": "videorectangle",
        "from_name": "box",
        "to_name": "video",
        "origin": "manual",
        "value": {
            "framesCount": 3,
            "duration": 0.3,
            "labels": ["square"],
            "sequence": [{"frame": 1, "enabled": True, "rotation": 0, "time": 0.0,
                          "x": 11.25, "y": 31.6667, "width": 21.25, "height": 28.3333}],
        },
    }  # fmt: skip
    raw = ls.ml.with_raw_response.predict_interactive(
        clip_backend.id, task=clip_task.id, context={"result": [region]}
    )
    tracked = raw.response.json()
    assert "data" in tracked and tracked["data"].get("result"), tracked
    (out_dir / "video.json").write_text(
        json.dumps({"task_video": clip_task.data["video"], "result": tracked["data"]["result"]})
    )
print("ok")
