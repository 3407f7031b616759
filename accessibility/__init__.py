"""Public-service accessibility analyser.

Walking-time circles (15-minute culture, fitness and elderly-care circles) per street/town,
population-weighted coverage, the gap to each plan target, and where new facilities should go.

Modules (one concern each, see DESIGN.md):

- ``accessibility.config``      study-area configuration, validated at load time
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
    ConfigError,
    CRSMismatchError,
    DataError,
)

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AccessibilityError",
    "ConfigError",
    "CRSMismatchError",
    "DataError",
    "__version__",
]
