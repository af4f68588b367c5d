"""A scene: background + people, vehicles and plates placed in perspective, with exact annotations.

Objects are described by specs (every random choice made up front), drawn far-to-near so nearer
objects occlude farther ones, and each object's *visible* mask is its drawn silhouette minus what
was drawn over it later. Boxes come from visible masks, keypoint visibility from the same masks.
The sample video reuses the specs, moving them between frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .background import make_background, smooth_noise
from .painter import Color, Painter, random_color
from .person import PersonPose, PersonStyle, draw_person, person_keypoints
from .vehicle import (
    PLATE_STYLES,
    draw_plate,
    draw_vehicle_front,
    draw_vehicle_side,
    plate_text,
    vehicle_color,
)

MIN_VISIBLE_PIXELS = 24  # objects hidden below this are not annotated (and rarely happen)


@dataclass
class SceneObject:
    """One annotated instance: its category, visible mask and, for people, keypoints (x, y, v)."""

    category: str  # "person" | "car" | "plate"
    mask: np.ndarray  # bool, image-sized, visible pixels
    keypoints: np.ndarray | None = None  # (17, 3) float, COCO visibility flags 0/1/2
    text: str | None = None  # plate digits


@dataclass
class Scene:
    image: np.ndarray  # BGR uint8
    objects: list[SceneObject] = field(default_factory=list)


@dataclass
class PersonSpec:
    foot_x: float
    foot_y: float
    height: float
    pose: PersonPose
    style: PersonStyle


@dataclass
class VehicleSpec:
    x: float  # centre x
    bottom: float
    width: float
    van: bool
    front: bool  # front/back view (plate visible) or side view
    facing_right: bool
    color: Color
    glass: float
    lights_on: bool
    plate: str
    plate_style: int


@dataclass
class PlateSpec:
    """A plate not on a vehicle (on a wall, a post, a parking sign)."""

    cx: float
    cy: float
    width: float
    text: str
    style: int


@dataclass
class OccluderSpec:
    """Something in front of the objects (pole, bush) that hides parts of them; not annotated."""

    kind: int
    x: float
    bottom: float
    size: float
    color: Color


ObjectSpec = PersonSpec | VehicleSpec | PlateSpec | OccluderSpec


def _depth_scale(y: float, horizon: int, height: int) -> float:
    return (y - horizon) / max(1.0, height - horizon)


def _approx_box(spec: ObjectSpec) -> tuple[float, float, float, float]:
    """A loose box used only to keep objects from piling up on each other."""
    if isinstance(spec, PersonSpec):
        return (
            spec.foot_x - 0.2 * spec.height,
            spec.foot_y - spec.height,
            spec.foot_x + 0.2 * spec.height,
            spec.foot_y,
        )
    if isinstance(spec, VehicleSpec):
        h = spec.width * (0.75 if spec.front else 0.55)
        return spec.x - spec.width / 2, spec.bottom - h, spec.x + spec.width / 2, spec.bottom
    if isinstance(spec, PlateSpec):
        return (
            spec.cx - spec.width / 2,
            spec.cy - spec.width * 0.2,
            spec.cx + spec.width / 2,
            spec.cy + spec.width * 0.2,
        )
    return spec.x, spec.bottom - spec.size, spec.x + spec.size, spec.bottom


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _covered(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Share of box ``a`` covered by box ``b``."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return iw * ih / area if area > 0 else 0.0


def random_person(rng: np.random.Generator, width: int, height: int, horizon: int) -> PersonSpec:
    foot_y = rng.uniform(horizon + 0.3 * (height - horizon), height + 0.04 * height)
    s = _depth_scale(foot_y, horizon, height)
    h = s * rng.uniform(0.55, 0.68) * height
    return PersonSpec(
        float(rng.uniform(-0.05, 1.05) * width),
        float(foot_y),
        float(h),
        PersonPose.random(rng),
        PersonStyle.random(rng),
    )


def random_vehicle(rng: np.random.Generator, width: int, height: int, horizon: int) -> VehicleSpec:
    bottom = rng.uniform(horizon + 0.3 * (height - horizon), height + 0.03 * height)
    s = _depth_scale(bottom, horizon, height)
    front = bool(rng.random() < 0.55)
    w = s * rng.uniform(0.55, 0.7) * width * (0.75 if front else 1.0)
    return VehicleSpec(
        x=float(rng.uniform(-0.05, 1.05) * width),
        bottom=float(bottom),
        width=float(w),
        van=bool(rng.random() < 0.3),
        front=front,
        facing_right=bool(rng.random() < 0.5),
        color=vehicle_color(rng),
        glass=float(rng.uniform(0.6, 1.4)),
        lights_on=bool(rng.random() < 0.5),
        plate=plate_text(rng),
        plate_style=int(rng.integers(len(PLATE_STYLES))),
    )


def random_plate(rng: np.random.Generator, width: int, height: int, horizon: int) -> PlateSpec:
    w = rng.uniform(0.06, 0.15) * width
    return PlateSpec(
        float(rng.uniform(0.05, 0.95) * width),
        float(rng.uniform(0.1, 0.9) * height),
        float(w),
        plate_text(rng),
        int(rng.integers(len(PLATE_STYLES))),
    )


def random_occluder(rng: np.random.Generator, width: int, height: int, horizon: int) -> OccluderSpec:
    bottom = rng.uniform(horizon + 0.6 * (height - horizon), height * 1.05)
    return OccluderSpec(
        int(rng.integers(2)),
        float(rng.uniform(0, width)),
        float(bottom),
        float(rng.uniform(0.08, 0.25) * height),
        random_color(rng, 30, 160),
    )


def random_layout(rng: np.random.Generator, width: int, height: int, horizon: int) -> list[ObjectSpec]:
    """People, vehicles, loose plates and occluders, spread so that overlaps stay moderate."""
    wanted: list[ObjectSpec] = []
    placed: list[tuple[float, float, float, float]] = []
    makers = (
        [random_person] * int(rng.integers(1, 5))
        + [random_vehicle] * int(rng.integers(0, 4))
        + [random_plate] * int(rng.choice([0, 0, 1, 1, 2]))
    )
    for make in makers:
        for _ in range(8):  # a few tries to find room
            spec = make(rng, width, height, horizon)
            box = _approx_box(spec)
            if all(_iou(box, p) < 0.2 and max(_covered(box, p), _covered(p, box)) < 0.4 for p in placed):
                wanted.append(spec)
                placed.append(box)
                break
    # Far to near; loose plates sit on walls behind everything.
    wanted.sort(key=lambda s: -1.0 if isinstance(s, PlateSpec) else _approx_box(s)[3])
    if rng.random() < 0.3:
        wanted.append(random_occluder(rng, width, height, horizon))
    return wanted


def _draw_occluder(painter: Painter, spec: OccluderSpec) -> None:
    if spec.kind == 0:  # pole
        w = max(3.0, spec.size * 0.08)
        painter.rect(spec.x, 0, spec.x + w, spec.bottom, spec.color)
    else:  # bush: overlapping blobs
        green = (40, 120 + int(spec.color[1]) % 60, 50)
        for k in range(5):
            cx = spec.x + (k - 2) * spec.size * 0.22
            painter.circle((cx, spec.bottom - spec.size * (0.3 + 0.1 * (k % 2))), spec.size * 0.3, green)


def compose(background: np.ndarray, specs: list[ObjectSpec]) -> Scene:
    """Draw ``specs`` in order over ``background``; annotate visible masks and keypoints."""
    image = background.copy()
    height, width = image.shape[:2]
    drawn: list[tuple[SceneObject, int | None, np.ndarray | None]] = []  # object, parent, raw keypoints

    def add(obj_mask: np.ndarray, category: str, parent: int | None = None, **extra: object) -> int:
        for i, (other, _, _) in enumerate(drawn):
            if i != parent:  # a plate does not hide the car it is mounted on
                other.mask &= ~obj_mask
        drawn.append(
            (
                SceneObject(category, obj_mask.copy(), text=extra.get("text")),  # type: ignore[arg-type]
                parent,
                extra.get("kp"),
            )
        )  # type: ignore[arg-type]
        return len(drawn) - 1

    for spec in specs:
        painter = Painter(image)
        if isinstance(spec, PersonSpec):
            kp = person_keypoints(spec.foot_x, spec.foot_y, spec.height, spec.pose)
            draw_person(painter, kp, spec.height, spec.style)
            add(painter.result(), "person", kp=kp)
        elif isinstance(spec, VehicleSpec):
            if spec.front:
                px, py, pw = draw_vehicle_front(
                    painter, spec.x, spec.bottom, spec.width, spec.van, spec.color, spec.glass, spec.lights_on
                )
                car = add(painter.result(), "car")
                plate_painter = Painter(image)
                draw_plate(plate_painter, px, py, pw, spec.plate, spec.plate_style)
                add(plate_painter.result(), "plate", parent=car, text=spec.plate)
            else:
                x0 = spec.x - spec.width / 2
                draw_vehicle_side(
                    painter, x0, spec.bottom, spec.width, spec.van, spec.color, spec.facing_right
                )
                add(painter.result(), "car")
        elif isinstance(spec, PlateSpec):
            draw_plate(painter, spec.cx, spec.cy, spec.width, spec.text, spec.style)
            add(painter.result(), "plate", text=spec.text)
        else:
            _draw_occluder(painter, spec)
            add(painter.result(), "occluder")

    scene = Scene(image)
    for obj, _, joints in drawn:
        if obj.category == "occluder" or obj.mask.sum() < MIN_VISIBLE_PIXELS:
            continue
        if joints is not None:
            obj.keypoints = keypoint_visibility(joints, obj.mask, width, height)
        scene.objects.append(obj)
    return scene


def keypoint_visibility(kp: np.ndarray, visible: np.ndarray, width: int, height: int) -> np.ndarray:
    """COCO flags: 2 visible (on the visible mask, 1 px slack), 1 occluded, 0 outside the image."""
    slack = cv2.dilate(visible.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    out = np.zeros((len(kp), 3), dtype=np.float64)
    for i, (x, y) in enumerate(kp):
        xi, yi = int(np.floor(x)), int(np.floor(y))
        if not (0 <= xi < width and 0 <= yi < height):
            continue
        out[i] = (x, y, 2 if slack[yi, xi] else 1)
    return out


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting change (gain, gradient, colour cast), blur (Gaussian or motion) and sensor noise."""
    height, width = image.shape[:2]
    img: np.ndarray = image.astype(np.float32)
    gain = rng.uniform(0.55, 1.35)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * (xx / width - 0.5) + np.sin(angle) * (yy / height - 0.5)) * rng.uniform(0, 0.6)
    shadow = 1.0 + smooth_noise(rng, height, width, 4, float(rng.uniform(0, 0.2)))
    cast = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    img = img * (gain * (1.0 + ramp) * shadow)[:, :, None] * cast
    img = np.clip(img, 0, 255)
    r = rng.random()
    if r < 0.35:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.4)))
    elif r < 0.5:
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        if rng.random() < 0.5:
            kernel = kernel.T.copy()
        img = cv2.filter2D(img, -1, kernel)
    img = img + rng.normal(0, rng.uniform(0, 9), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    """One random scene with its annotations, fully determined by ``rng``'s state."""
    background, horizon = make_background(rng, width, height)
    specs = random_layout(rng, width, height, horizon)
    scene = compose(background, specs)
    scene.image = photometric(scene.image, rng)
    return scene
