"""Many images from one idea: X/Y/Z plots, prompt matrices, grids, styles, wildcards, prompt packs.

Pure core (Python and Pillow; dynamicprompts imported on first use). The pieces:

- :mod:`.values` and :mod:`.axes`: A1111's X/Y/Z axis types and value syntax (``1-10 (+2)``);
- :mod:`.plan` and :mod:`.build`: a :class:`SweepSpec` built over a RunConfig into a stored
  :class:`SweepPlan`, expanded into :class:`SweepCell` s in load-once order;
- :mod:`.matrix`: A1111's prompt matrix on the same plan;
- :mod:`.grid` and :mod:`.grid_output`: the labelled grid image, its infotext and its file;
- :mod:`.styles`, :mod:`.wildcards`, :mod:`.packs`: styles.csv, dynamic prompts, prompt packs.

See ``docs/sweeps.md``.
"""

from __future__ import annotations

from .appliers import SweepContext
from .axes import AXIS_TYPES, AxisType, LabelStyle, axis_type, format_label
from .build import (
    MAX_GRID_MEGAPIXELS,
    SweepCell,
    SweepJobs,
    build_prompt_matrix,
    build_sweep,
    sweep_cells,
    sweep_jobs,
)
from .grid import compose_grid, image_grid, placeholder
from .grid_font import GridFont
from .grid_output import (
    SWEEP_PLAN_KEY,
    SweepGrids,
    assemble_grids,
    grid_parameters,
    grid_png,
    grid_stem,
    write_grid,
)
from .legend import GridLabel, GridLegend
from .matrix import PromptMatrix, PromptMatrixOptions
from .packs import PackEntry, load_prompt_pack, pack_configs, parse_json_pack, parse_text_pack
from .plan import AxisSpec, PlannedAxis, SweepOptions, SweepPlan, SweepSpec
from .styles import (
    PromptStyle,
    StyleLibrary,
    apply_styles,
    extract_styles,
    merge_prompts,
    save_style,
    styles_in_prompt,
)
from .values import AxisValue, ValueKind, parse_values, split_values
from .wildcards import ExpandedConfig, PromptExpander, expand_config, has_dynamic_syntax

__all__ = [
    "AXIS_TYPES",
    "MAX_GRID_MEGAPIXELS",
    "SWEEP_PLAN_KEY",
    "AxisSpec",
    "AxisType",
    "AxisValue",
    "ExpandedConfig",
    "GridFont",
    "GridLabel",
    "GridLegend",
    "LabelStyle",
    "PackEntry",
    "PlannedAxis",
    "PromptExpander",
    "PromptMatrix",
    "PromptMatrixOptions",
    "PromptStyle",
    "StyleLibrary",
    "SweepCell",
    "SweepContext",
    "SweepGrids",
    "SweepJobs",
    "SweepOptions",
    "SweepPlan",
    "SweepSpec",
    "ValueKind",
    "apply_styles",
    "assemble_grids",
    "axis_type",
    "build_prompt_matrix",
    "build_sweep",
    "compose_grid",
    "expand_config",
    "extract_styles",
    "format_label",
    "grid_parameters",
    "grid_png",
    "grid_stem",
    "has_dynamic_syntax",
    "image_grid",
    "load_prompt_pack",
    "merge_prompts",
    "pack_configs",
    "parse_json_pack",
    "parse_text_pack",
    "parse_values",
    "placeholder",
    "save_style",
    "split_values",
    "styles_in_prompt",
    "sweep_cells",
    "sweep_jobs",
    "write_grid",
]
