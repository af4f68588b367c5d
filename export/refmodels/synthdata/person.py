"""Articulated people: a jointed figure whose joints are the 17 COCO keypoints.

The figure is built from a pose (limb angles) so the keypoints are exact, and drawn with thick
limbs, a torso, and a head with eyes and nose so that face keypoints have something to see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .painter import Color, Painter, random_color, shade

# Index of each COCO keypoint in the 17-row array.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 11, 12, 13, 14, 15, 16

SKIN_TONES: list[Color] = [(170, 200, 240), (120, 160, 215), (80, 120, 175), (60, 90, 130), (140, 180, 225)]


@dataclass
class PersonPose:
    """Limb angles in radians from straight down (positive swings toward +x), and the head yaw."""

    left_arm: float
    left_forearm: float
    right_arm: float
    right_forearm: float
    left_thigh: float
    left_shin: float
    right_thigh: float
    right_shin: float
    yaw: float  # -1 (facing image left) .. 1 (facing image right)

    @staticmethod
    def random(rng: np.random.Generator) -> PersonPose:
        arm = rng.uniform(-0.6, 0.6, size=2)
        leg = rng.uniform(-0.45, 0.45, size=2)
        return PersonPose(
            left_arm=float(arm[0] + 0.15),
            left_forearm=float(arm[0] + 0.15 + rng.uniform(-0.2, 1.2)),
            right_arm=float(arm[1] - 0.15),
            right_forearm=float(arm[1] - 0.15 - rng.uniform(-0.2, 1.2)),
            left_thigh=float(leg[0] + 0.05),
            left_shin=float(leg[0] + 0.05 - rng.uniform(0.0, 0.6)),
            right_thigh=float(leg[1] - 0.05),
            right_shin=float(leg[1] - 0.05 - rng.uniform(0.0, 0.6)),
            yaw=float(rng.uniform(-0.5, 0.5)),
        )

    @staticmethod
    def walking(phase: float, yaw: float) -> PersonPose:
        """A smooth walk cycle for the sample video (``phase`` in radians)."""
        s = float(np.sin(phase))
        return PersonPose(
            left_arm=0.45 * s + 0.1,
            left_forearm=0.45 * s + 0.1 + 0.5,
            right_arm=-0.45 * s - 0.1,
            right_forearm=-0.45 * s - 0.1 + 0.5,
            left_thigh=-0.35 * s,
            left_shin=-0.35 * s - 0.25 * max(0.0, s),
            right_thigh=0.35 * s,
            right_shin=0.35 * s - 0.25 * max(0.0, -s),
            yaw=yaw,
        )


def _limb(start: np.ndarray, angle: float, length: float) -> np.ndarray:
    """End point of a limb hanging from ``start`` at ``angle`` from straight down."""
    return start + length * np.array([np.sin(angle), np.cos(angle)])


def person_keypoints(foot_x: float, foot_y: float, height: float, pose: PersonPose) -> np.ndarray:
    """The 17 COCO keypoints (x, y) of a figure standing with its feet at (foot_x, foot_y).

    The figure faces the camera, so the person's left side is on the image's right (+x).
    """
    h = height
    kp = np.zeros((17, 2), dtype=np.float64)
    hip_y = foot_y - 0.50 * h
    shoulder_y = foot_y - 0.80 * h
    kp[L_HIP] = (foot_x + 0.075 * h, hip_y)
    kp[R_HIP] = (foot_x - 0.075 * h, hip_y)
    kp[L_SHOULDER] = (foot_x + 0.12 * h, shoulder_y)
    kp[R_SHOULDER] = (foot_x - 0.12 * h, shoulder_y)
    kp[L_ELBOW] = _limb(kp[L_SHOULDER], pose.left_arm, 0.17 * h)
    kp[L_WRIST] = _limb(kp[L_ELBOW], pose.left_forearm, 0.15 * h)
    kp[R_ELBOW] = _limb(kp[R_SHOULDER], pose.right_arm, 0.17 * h)
    kp[R_WRIST] = _limb(kp[R_ELBOW], pose.right_forearm, 0.15 * h)
    kp[L_KNEE] = _limb(kp[L_HIP], pose.left_thigh, 0.245 * h)
    kp[L_ANKLE] = _limb(kp[L_KNEE], pose.left_shin, 0.235 * h)
    kp[R_KNEE] = _limb(kp[R_HIP], pose.right_thigh, 0.245 * h)
    kp[R_ANKLE] = _limb(kp[R_KNEE], pose.right_shin, 0.235 * h)
    head_r = 0.07 * h
    head = np.array([foot_x, shoulder_y - 0.03 * h - head_r])
    yaw_dx = pose.yaw * 0.45 * head_r
    kp[NOSE] = head + np.array([yaw_dx, 0.25 * head_r])
    kp[L_EYE] = head + np.array([yaw_dx + 0.38 * head_r, -0.15 * head_r])
    kp[R_EYE] = head + np.array([yaw_dx - 0.38 * head_r, -0.15 * head_r])
    kp[L_EAR] = head + np.array([0.95 * head_r - 0.3 * max(0.0, pose.yaw) * head_r, 0.0])
    kp[R_EAR] = head + np.array([-0.95 * head_r - 0.3 * min(0.0, pose.yaw) * head_r, 0.0])
    return kp


@dataclass
class PersonStyle:
    shirt: Color
    pants: Color
    skin: Color
    hair: Color

    @staticmethod
    def random(rng: np.random.Generator) -> PersonStyle:
        skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
        hair_v = int(rng.integers(10, 90))
        return PersonStyle(
            shirt=random_color(rng),
            pants=random_color(rng, 15, 160),
            skin=skin,
            hair=(hair_v, hair_v + int(rng.integers(0, 30)), hair_v + int(rng.integers(0, 50))),
        )


def draw_person(painter: Painter, kp: np.ndarray, height: float, style: PersonStyle) -> None:
    """Draw the figure whose joints are ``kp``; the silhouette goes into the painter's mask."""
    h = height
    limb_t = 0.075 * h
    arm_t = 0.06 * h
    # Legs first (behind the torso), then torso, arms, head.
    for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        painter.line(kp[hip], kp[knee], style.pants, limb_t)
        painter.line(kp[knee], kp[ankle], shade(style.pants, 0.85), limb_t * 0.9)
        foot = kp[ankle] + (0.035 * h * (1 if ankle == L_ANKLE else -1), 0.01 * h)
        painter.line(kp[ankle], foot, (30, 30, 35), limb_t * 0.7)
    torso = np.array(
        [
            kp[R_SHOULDER] + (-0.01 * h, -0.01 * h),
            kp[L_SHOULDER] + (0.01 * h, -0.01 * h),
            kp[L_HIP] + (0.015 * h, 0.03 * h),
            kp[R_HIP] + (-0.015 * h, 0.03 * h),
        ]
    )
    painter.polygon(torso, style.shirt)
    for shoulder, elbow, wrist in ((L_SHOULDER, L_ELBOW, L_WRIST), (R_SHOULDER, R_ELBOW, R_WRIST)):
        painter.line(kp[shoulder], kp[elbow], shade(style.shirt, 0.9), arm_t)
        painter.line(kp[elbow], kp[wrist], style.skin, arm_t * 0.85)
        painter.circle((kp[wrist][0], kp[wrist][1]), arm_t * 0.55, style.skin)
    head_r = 0.07 * h
    neck_top = (kp[L_SHOULDER] + kp[R_SHOULDER]) / 2
    head_c = np.array([neck_top[0], neck_top[1] - 0.03 * h - head_r])
    painter.line(neck_top, head_c, style.skin, 0.05 * h)
    painter.circle((head_c[0], head_c[1]), head_r, style.skin)
    # Hair cap: the upper part of the head in the hair colour.
    cap = head_c + head_r * np.stack(
        [np.cos(np.linspace(np.pi, 2 * np.pi, 12)), 0.95 * np.sin(np.linspace(np.pi, 2 * np.pi, 12))], axis=1
    )
    painter.detail_polygon(np.vstack([cap, head_c + np.array([head_r, -0.35 * head_r])]), style.hair)
    eye_r = max(0.8, 0.13 * head_r)
    for eye in (L_EYE, R_EYE):
        painter.detail_circle((kp[eye][0], kp[eye][1]), eye_r, (25, 25, 25))
    painter.detail_circle((kp[NOSE][0], kp[NOSE][1]), eye_r * 0.9, shade(style.skin, 0.6))
    for ear in (L_EAR, R_EAR):
        painter.circle((kp[ear][0], kp[ear][1]), head_r * 0.22, shade(style.skin, 0.85))
