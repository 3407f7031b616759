"""Public-service accessibility analyser.

Walking-time circles (15-minute culture, fitness and elderly-care circles) per street/town,
population-weighted coverage, the gap to each plan target, and where new facilities should go.

Start here::

    import accessibility
    area = accessibility.open_area("config/areas/jiangbei.yaml")
    area                                         # name, data status, units, population, network
    area.coverage_by_unit("culture_15min", threshold_min=10)
    area.site("eldercare_15min", k=10)["curve"]

Modules (one concern each, see DESIGN.md):

- ``accessibility.area``        ``open_area`` -> ``StudyArea``: the planner's questions
- ``accessibility.config``      study-area configuration, validated at load time
- ``accessibility.rules``       one rule object per circle (``circle_rule`` -> ``CircleRule``)
- ``accessibility.coords``      WGS-84 / GCJ-02 / BD-09 conversion
- ``accessibility.osm``         OSM readers (.osm.pbf, .osm, .osm.bz2, Overpass via osmnx)
- ``accessibility.facilities``  facility classification and planners' inventories
- ``accessibility.units``       street/town polygons
- ``accessibility.population``  population rasters and census tables into cells
- ``accessibility.terrain``     DEM sampling, smoothed grades, Tobler / Naismith
- ``accessibility.network``     the directed walking network
- ``accessibility.traveltime``  snapping and compiled multi-source shortest paths
- ``accessibility.coverage``    per-cell times and per-unit coverage tables
- ``accessibility.siting``      LSCP / MCLP siting of new facilities
- ``accessibility.maps``        Folium maps
- ``accessibility.report``      HTML report and Excel workbook
- ``accessibility.pipeline``    the end-to-end run of one study area
- ``accessibility.batch``       many areas/scenarios on Dask distributed
"""

import logging

from accessibility._errors import (
    AccessibilityError,
    AccessibilityWarning,
    ConfigError,
    CRSMismatchError,
    DataError,
)

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AccessibilityError",
    "AccessibilityWarning",
    "ConfigError",
    "CRSMismatchError",
    "DataError",
    "StudyArea",
    "__version__",
    "circle_rule",
    "open_area",
]

#: Loaded on first use (PEP 562): ``import accessibility`` stays light.
_LAZY = {"open_area": "accessibility.area", "StudyArea": "accessibility.area",
         "circle_rule": "accessibility.rules", "CircleRule": "accessibility.rules"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'accessibility' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
