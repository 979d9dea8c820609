"""masklet.lazy: names imported on first use (keeps `import masklet` free of PyTorch)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from masklet.lazy import lazy_exports


def test_a_lazy_name_is_imported_once_and_kept() -> None:
    namespace: dict[str, Any] = {}
    getattr_, dir_ = lazy_exports("pkg", {"sqrt": "math"}, namespace)
    assert "sqrt" in dir_()
    import math

    assert getattr_("sqrt") is math.sqrt
    assert namespace["sqrt"] is math.sqrt  # later lookups find it without the hook


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    getattr_, _ = lazy_exports("pkg", {"sqrt": "math"}, {})
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'nope'"):
        getattr_("nope")


def test_importing_masklet_does_not_import_torch_until_a_model_name_is_used() -> None:
    code = (
        "import sys, masklet, masklet.text, masklet.checkpoints\n"
        "assert 'torch' not in sys.modules, 'import masklet imported torch'\n"
        "masklet.ImagePredictor\n"
        "assert 'torch' in sys.modules\n"
        "from masklet.checkpoints import detect_config  # a name moved elsewhere, still served\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
