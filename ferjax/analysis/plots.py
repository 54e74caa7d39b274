"""The analysis figures, one panel (or column) per run: t-SNE, unit sphere, angles, loss landscape, Grad-CAM."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colors  # noqa: E402

from ferjax.analysis.gradcam import Explanation, overlay  # noqa: E402
from ferjax.analysis.landscape import Landscape  # noqa: E402


def _class_colour(c: int):
    return plt.get_cmap("tab10")(c % 10)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _legend(fig, class_names: Sequence[str], panels: int) -> None:
    """Class colours under the panels, at most four names per panel width in a row."""
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=_class_colour(c), label=name)
               for c, name in enumerate(class_names)]
    columns = min(len(class_names), 4 * panels)
    fig.legend(handles=handles, loc="lower center", ncol=columns, frameon=False)
    fig.subplots_adjust(bottom=0.06 + 0.05 * -(-len(class_names) // columns))


def tsne_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], class_names: Sequence[str], path: Path) -> None:
    """Panels of (title, points (N, 2), labels (N,))."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.4), squeeze=False)
    for ax, (title, points, labels) in zip(axes[0], panels):
        ax.scatter(points[:, 0], points[:, 1], c=[_class_colour(c) for c in labels], s=6, alpha=0.7, linewidths=0)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    _legend(fig, class_names, len(panels))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sphere_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, str]], class_names: Sequence[str],
                  path: Path) -> None:
    """Panels of (title, unit embeddings (N, 3), labels, unit centres (C, 3), what the centres are)."""
    fig = plt.figure(figsize=(5.4 * len(panels), 5.8))
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
    for i, (title, points, labels, centres, kind) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1, projection="3d")
        ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", linewidth=0.4)
        ax.scatter(*points.T, c=[_class_colour(c) for c in labels], s=5, alpha=0.6, depthshade=False)
        for c, centre in enumerate(centres):
            ax.plot(*np.stack([np.zeros(3), centre]).T, color=_class_colour(c), linewidth=2)
            ax.scatter(*centre, color=_class_colour(c), s=90, marker="*", edgecolors="black", linewidths=0.5)
        ax.set_box_aspect((1, 1, 1))
        ax.set_title(f"{title}\nstars: class centres ({kind})", fontsize=9)
    _legend(fig, class_names, len(panels))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def angles_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path) -> None:
    """Panels of (title, target angles, non-target angles) in degrees."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    bins = np.linspace(0, 180, 73)
    for ax, (title, target, other) in zip(axes[0], panels):
        for values, name, colour in ((target, "target", "tab:blue"), (other, "non-target", "tab:orange")):
            ax.hist(values, bins=bins, density=True, alpha=0.6, color=colour,
                    label=f"{name}: {np.mean(values):.1f}° ± {np.std(values):.1f}")
        ax.set_xlabel("angle to class centre (degrees)")
        ax.set_ylabel("density")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    _save(fig, path)


def landscape_figure(panels: Sequence[tuple[str, Landscape]], path: Path) -> None:
    """Per run a column: the 1-D curve f(α, 0), the contour of f(α, β) and its surface."""
    fig = plt.figure(figsize=(5.0 * len(panels), 13.0))
    n = len(panels)
    for i, (title, land) in enumerate(panels):
        low = max(float(land.surface.min()), 1e-6)
        levels = np.geomspace(low, max(float(land.surface.max()), low * 1.01), 20)
        ax = fig.add_subplot(3, n, i + 1)
        ax.plot(land.line_alphas, land.line, color="tab:blue")
        ax.axvline(0.0, color="0.6", linewidth=0.8)
        ax.set_xlabel("α (filter-normalised direction δ)")
        ax.set_ylabel("training loss")
        ax.set_title(f"{title}\n1-D: f(α, 0); {land.examples} training images", fontsize=9)
        ax = fig.add_subplot(3, n, n + i + 1)
        grid = np.meshgrid(land.alphas, land.alphas)
        contour = ax.contour(*grid, land.surface, levels=levels, cmap="viridis", norm=colors.LogNorm())
        ax.clabel(contour, fontsize=6, fmt="%.2g")
        ax.plot(0, 0, marker="*", color="red", markersize=10)
        ax.set_xlabel("α (δ)")
        ax.set_ylabel("β (η)")
        ax.set_aspect("equal")
        ax.set_title("contour of f(α, β) (log-spaced levels)", fontsize=9)
        ax = fig.add_subplot(3, n, 2 * n + i + 1, projection="3d")
        ax.plot_surface(*grid, land.surface, cmap="viridis", norm=colors.LogNorm(), linewidth=0, antialiased=True)
        ax.set_xlabel("α")
        ax.set_ylabel("β")
        ax.set_zlabel("loss")
        ax.set_title("surface of f(α, β)", fontsize=9)
    _save(fig, path)


def gradcam_figure(images: np.ndarray, true_labels: Sequence[str], runs: Sequence[tuple[str, Explanation, Sequence[str]]],
                   path: Path) -> None:
    """Rows of images; columns: the image, then per run its heatmap and overlay (class, probability)."""
    columns = 1 + 2 * len(runs)
    fig, axes = plt.subplots(len(images), columns, figsize=(1.9 * columns, 2.0 * len(images) + 0.4), squeeze=False)
    for row, image in enumerate(images):
        shown = image[..., 0] if image.shape[-1] == 1 else image
        axes[row, 0].imshow(shown, cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_title(f"true: {true_labels[row]}", fontsize=8)
        for r, (name, explanation, class_names) in enumerate(runs):
            cam, c = explanation.maps[row], int(explanation.classes[row])
            axes[row, 1 + 2 * r].imshow(cam, cmap="jet", vmin=0, vmax=1)
            axes[row, 2 + 2 * r].imshow(overlay(image, cam))
            if row == 0:
                axes[row, 1 + 2 * r].set_title(f"{name}\n{explanation.layer}", fontsize=7)
            axes[row, 2 + 2 * r].set_title(f"{class_names[c]} p={explanation.probabilities[row, c]:.2f}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    _save(fig, path)
