"""Object detection for every app: letterboxing, decoders (YOLOX, YOLOv5, YOLOv8, SSD TFLite
post-processing, CenterNet), class-aware NMS, mAP, a ``Detector`` over any detection model folder,
an IoU + Kalman ``Tracker``, regions/lines with enter/leave/cross events, drawing, and
``import_model`` (``ember models import``) to bring your own detector.

    from sdk.detect import Detector, Tracker
    det = Detector.from_folder("models/yolox", tier="fp32")
    tracks = Tracker().update(det.detect(frame))
"""

from sdk.detect.boxes import Letterbox, batched_nms, box_iou, letterbox, nms
from sdk.detect.decoders import DECODERS, Raw, get_decoder
from sdk.detect.detector import Detection, Detector, Postprocess, Preprocess, as_bgr
from sdk.detect.draw import draw_detections
from sdk.detect.importer import guess_decoder, import_model, read_labels
from sdk.detect.metrics import ImageResult, average_precision, evaluate_map
from sdk.detect.track import Tracker
from sdk.detect.zones import Line, Region, Zones, draw_zones

__all__ = [
    "DECODERS", "Detection", "Detector", "ImageResult", "Letterbox", "Line", "Postprocess", "Preprocess", "Raw",
    "Region", "Tracker", "Zones", "as_bgr", "average_precision", "batched_nms", "box_iou", "draw_detections",
    "draw_zones", "evaluate_map", "get_decoder", "guess_decoder", "import_model", "letterbox", "nms",
    "read_labels",
]
