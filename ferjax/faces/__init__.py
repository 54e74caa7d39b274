"""Face detection (MTCNN in JAX, or OpenCV's Haar cascade) and face crops for prediction.

    from ferjax.faces import make_detector, crop_face
    detector = make_detector("mtcnn")            # or "haar"; needs pip install 'ferjax[predict]'
    faces = detector.detect(rgb_uint8_image)      # list[Face], best score first
    crops = [crop_face(rgb_uint8_image, face) for face in faces]
"""

from ferjax.faces.align import crop_face, eye_angle
from ferjax.faces.detector import DETECTORS, Detector, Face, MissingExtra, make_detector

__all__ = ["DETECTORS", "Detector", "Face", "MissingExtra", "crop_face", "eye_angle", "make_detector"]
