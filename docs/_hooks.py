"""mkdocs hook: the figures committed in results/ become files of the site at the same path (results/...), so the
pages show them without a second copy in docs/."""

from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]
FIGURES = ["figure3.png", "learning_curves.png", "table1_scores.png", "report_example/curves.png",
           "tuning_Hopper-v5_history.png", "tuning_Hopper-v5_importances.png"]


def on_files(files, config):
    for name in FIGURES:
        files.append(File(f"results/{name}", str(REPO), config["site_dir"], config["use_directory_urls"]))
    return files
