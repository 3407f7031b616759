# Quick start:  make run   (main job on the offline default study area)
#               make test  (the test suite)
# Both create .venv and install the project on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AREA ?= config/areas/jiangbei.yaml

.PHONY: run test lint bench demo-data clean-processed setup fonts notebook

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,distributed,bench]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP) fonts

# Chinese labels in the charts and the atlas need a CJK font: Debian/Ubuntu's fonts-noto-cjk
fonts:
	@fc-list 2>/dev/null | grep -q "Noto Sans CJK" || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null; } || \
	  echo "warning: no Chinese font found; install it (sudo apt-get install fonts-noto-cjk), else Chinese labels in the charts and atlas.pdf show as boxes"

demo-data: $(STAMP)
	$(BIN)/accessibility demo-data $(AREA)

run: $(STAMP) fonts
	$(BIN)/accessibility demo-data $(AREA)
	$(BIN)/accessibility run $(AREA)

test: $(STAMP) fonts
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# JupyterLab on the planners' notebooks; ACCESSIBILITY_AREA=$$PWD/config/areas/<name>.yaml for your area
notebook: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/accessibility demo-data $(AREA)
	$(BIN)/python scripts/bench.py --sizes 10k,100k,1m --repeat 3 --out docs/PERFORMANCE.md
	$(BIN)/python scripts/bench_siting.py $(AREA) --out docs/SITING_BENCH.md
