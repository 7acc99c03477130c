"""The ``headstart`` command, installed by ``pip install .``:

    headstart predict EXPORT IMAGES [-o predictions.csv] [--top 5]
    headstart init --classes classes.txt [--model tf_efficientnet_lite0] [--measure sentence] -o my_head/

``predict`` classifies an image, or every image under a folder, with an exported classifier
(headstart.export.predict); ``init`` writes a head for your classes from their names (headstart.init).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = {
    "predict": "classify images with an exported classifier (an export folder: card.json, model.safetensors)",
    "init": "a head for your classes from their names, as an export folder (no study run)",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        from . import __version__

        print(f"headstart {__version__}")
        return 0
    if not argv or argv[0] not in COMMANDS:
        asked = bool(argv) and argv[0] in ("-h", "--help")
        usage = "usage:\n" + "\n".join(f"  headstart {name} ...   {what}" for name, what in COMMANDS.items())
        usage += "\n  headstart --version"
        if argv and not asked:  # say what was wrong before how to say it
            usage = f"headstart: unknown command {argv[0]!r}\n{usage}"
        elif not argv:
            usage = f"headstart: no command given\n{usage}"
        print(usage, file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    if argv[0] == "init":
        from .init import main as init

        return init(argv[1:])
    from .export.predict import main as predict

    return predict(argv[1:], prog="headstart predict")


if __name__ == "__main__":
    sys.exit(main())
