# A port of Frigate's ImprovedMotionDetector, for comparison benchmarks only (never used by
# edgeguard itself).
#
# Source: https://github.com/blakeblackshear/frigate/blob/001a0ce1b2746da51901ed4b2d38015c145116e3/frigate/motion/improved_motion.py
# Defaults: frigate/config/camera/motion.py (MotionConfig).
#
# Changes from the original, none of which alters the algorithm:
# - no PTZ autotracking branch, no config-update subscriber, no debug image saving;
# - scipy.ndimage.gaussian_filter(sigma=1, radius=1) is replaced by the same 3x3 Gaussian
#   kernel in OpenCV (cv2.GaussianBlur((3, 3), 1, BORDER_REFLECT), scipy's default mode
#   "reflect"), to avoid a scipy dependency;
# - imutils.grab_contours is replaced by taking findContours' first result (OpenCV 4);
# - the settings are a small dataclass with Frigate's defaults instead of MotionConfig.
#
# The MIT License
#
# Copyright (c) 2020 Blake Blackshear
#
# Permission is hereby granted, free of charge, to any person obtaining a copy
# of this software and associated documentation files (the "Software"), to deal
# in the Software without restriction, including without limitation the rights
# to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
# copies of the Software, and to permit persons to whom the Software is
# furnished to do so, subject to the following conditions:
#
# The above copyright notice and this permission notice shall be included in all
# copies or substantial portions of the Software.
#
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
# IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
# FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
# AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
# LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
# OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
# SOFTWARE.
"""Frigate's ImprovedMotionDetector (MIT, Blake Blackshear), ported for bench/motion_compare.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class FrigateMotionConfig:
    """Frigate's MotionConfig defaults; ``mask`` is full-frame uint8, 0 where masked."""

    threshold: int = 30
    lightning_threshold: float = 0.8
    improve_contrast: bool = True
    contour_area: int = 10
    frame_alpha: float = 0.01
    frame_height: int = 100
    mask: Any = None


class ImprovedMotionDetector:
    """detect(frame) takes the grey (Y) plane, as Frigate does, and returns pixel boxes
    (x1, y1, x2, y2) in the frame's coordinates."""

    def __init__(
        self,
        frame_shape: tuple[int, ...],
        config: FrigateMotionConfig,
        blur_radius: int = 1,
        interpolation: int = cv2.INTER_NEAREST,
        contrast_frame_history: int = 50,
    ) -> None:
        self.config = config
        self.frame_shape = frame_shape
        self.resize_factor = frame_shape[0] / config.frame_height
        self.motion_frame_size = (
            config.frame_height,
            config.frame_height * frame_shape[1] // frame_shape[0],
        )
        self.avg_frame = np.zeros(self.motion_frame_size, np.float32)
        self.motion_frame_count = 0
        mask = config.mask
        if mask is None:
            mask = np.full(frame_shape[:2], 255, np.uint8)
        resized_mask = cv2.resize(
            mask,
            dsize=(self.motion_frame_size[1], self.motion_frame_size[0]),
            interpolation=cv2.INTER_AREA,
        )
        self.mask = np.where(resized_mask == [0])
        self.calibrating = True
        self.blur_radius = blur_radius
        self.interpolation = interpolation
        self.contrast_values = np.zeros((contrast_frame_history, 2), np.uint8)
        self.contrast_values[:, 1:2] = 255
        self.contrast_values_index = 0

    def is_calibrating(self) -> bool:
        return self.calibrating

    def detect(self, frame: Any) -> list[tuple[int, int, int, int]]:
        motion_boxes: list[tuple[int, int, int, int]] = []

        gray = frame[0 : self.frame_shape[0], 0 : self.frame_shape[1]]

        # resize frame
        resized_frame = cv2.resize(
            gray,
            dsize=(self.motion_frame_size[1], self.motion_frame_size[0]),
            interpolation=self.interpolation,
        )

        # Improve contrast
        if self.config.improve_contrast:
            min_value = np.percentile(resized_frame, 4).astype(np.uint8)
            max_value = np.percentile(resized_frame, 96).astype(np.uint8)
            # skip contrast calcs if the image is a single color
            if min_value < max_value:
                # keep track of the last 50 contrast values
                self.contrast_values[self.contrast_values_index] = [min_value, max_value]
                self.contrast_values_index += 1
                if self.contrast_values_index == len(self.contrast_values):
                    self.contrast_values_index = 0

                avg_min, avg_max = np.mean(self.contrast_values, axis=0)

                resized_frame = np.clip(resized_frame, avg_min, avg_max)
                resized_frame = (((resized_frame - avg_min) / (avg_max - avg_min)) * 255).astype(
                    np.uint8
                )

        # mask frame
        # this has to come after contrast improvement
        # Setting masked pixels to zero, to match the average frame at startup
        resized_frame[self.mask] = [0]

        # scipy.ndimage.gaussian_filter(sigma=1, radius=1): a 3x3 kernel, mode "reflect"
        k = 2 * self.blur_radius + 1
        resized_frame = cv2.GaussianBlur(resized_frame, (k, k), 1, borderType=cv2.BORDER_REFLECT)

        # compare to average
        frame_delta = cv2.absdiff(resized_frame, cv2.convertScaleAbs(self.avg_frame))

        # compute the threshold image for the current frame
        thresh = cv2.threshold(frame_delta, self.config.threshold, 255, cv2.THRESH_BINARY)[1]

        # dilate the thresholded image to fill in holes, then find contours
        # on thresholded image
        thresh_dilated = cv2.dilate(thresh, None, iterations=1)
        contours = cv2.findContours(thresh_dilated, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]

        # loop over the contours
        total_contour_area = 0.0
        for c in contours:
            # if the contour is big enough, count it as motion
            contour_area = cv2.contourArea(c)
            total_contour_area += contour_area
            if contour_area > self.config.contour_area:
                x, y, w, h = cv2.boundingRect(c)
                motion_boxes.append(
                    (
                        int(x * self.resize_factor),
                        int(y * self.resize_factor),
                        int((x + w) * self.resize_factor),
                        int((y + h) * self.resize_factor),
                    )
                )

        pct_motion = total_contour_area / (self.motion_frame_size[0] * self.motion_frame_size[1])

        # once the motion is less than 5% and the number of contours is < 4, assume its calibrated
        if pct_motion < 0.05 and len(motion_boxes) <= 4:
            self.calibrating = False

        # if calibrating or the motion contours are > 80% of the image area (lightning, ir, ptz)
        # recalibrate
        if self.calibrating or pct_motion > self.config.lightning_threshold:
            self.calibrating = True

        if len(motion_boxes) > 0:
            self.motion_frame_count += 1
            if self.motion_frame_count >= 10:
                # only average in the current frame if the difference persists for a bit
                cv2.accumulateWeighted(
                    resized_frame,
                    self.avg_frame,
                    0.2 if self.calibrating else self.config.frame_alpha,
                )
        else:
            # when no motion, just keep averaging the frames together
            cv2.accumulateWeighted(
                resized_frame,
                self.avg_frame,
                0.2 if self.calibrating else self.config.frame_alpha,
            )
            self.motion_frame_count = 0

        return motion_boxes
