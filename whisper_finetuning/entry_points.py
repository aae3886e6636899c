"""Where the kit's entry scripts are. The training and evaluation scripts stay at the top of the repository, where
users of the Hugging Face event scripts look for them; the demo, the comparison and the search find them here."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "run_speech_recognition_seq2seq_streaming.py"
EVAL_SCRIPT = REPO / "run_eval.py"


def import_script(path: Path):
    """An entry script as a module (the search calls the training script's main() in its own process); the module
    already imported under the script's name when there is one."""
    loaded = sys.modules.get(path.stem)
    if loaded is not None and Path(loaded.__file__).resolve() == path:
        return loaded
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is not at {path.parent}: the kit's commands run from a clone of the "
                                "repository (or an editable install of it), where the entry scripts sit beside the "
                                "package")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # as `import` does: other imports of the script get this module
    spec.loader.exec_module(module)
    return module
