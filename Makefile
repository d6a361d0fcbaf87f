# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

# The user's install (`make demo`) and the developer's (`make test`: + the test extra, with
# librosa, playwright, onnx). Each stamp records which was made; `make test` after `make demo`
# adds the extra to the same venv.
DEMO_STAMP := $(VENV)/.demo-stamp
TEST_STAMP := $(VENV)/.test-stamp

$(VENV)/bin/python:
	@# Debian's python3 lacks ensurepip unless python3-venv is installed: fall back to a venv
	@# without pip and bootstrap pip from PyPA, so nothing has to be installed by hand.
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV) && $(PYTHON) -m venv --without-pip $(VENV) \
		&& $(BIN)/python -c "import urllib.request as u; exec(u.urlopen('https://bootstrap.pypa.io/get-pip.py').read())"; }
	$(BIN)/pip install --upgrade pip

# mediapipe pulls in opencv-contrib-python, whose cv2 needs libGL and glib from apt; the
# headless build of the same version needs nothing from the system, so swap it in (replace,
# never add: both wheels own the cv2 package). Run after every install: pip puts the
# non-headless wheel back whenever it resolves mediapipe's requirements again.
define headless_cv2
	@v=$$($(BIN)/python -c "import importlib.metadata as m; print(m.version('opencv-contrib-python'))" 2>/dev/null) \
		&& $(BIN)/pip uninstall -y -q opencv-contrib-python \
		&& $(BIN)/pip install -q --no-deps --force-reinstall "opencv-contrib-python-headless==$$v" || true
	$(BIN)/python -c "import cv2, mediapipe" || { echo "could not import OpenCV/mediapipe (see above)"; exit 1; }
endef

$(DEMO_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -e .
	$(headless_cv2)
	touch $(DEMO_STAMP)

$(TEST_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -e '.[test]'
	$(headless_cv2)
	touch $(TEST_STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/avatarkit build examples/hero.jpg -o out
	$(BIN)/avatarkit preview out/hero -o out/hero_preview.mp4 \
		--text "Hello! I am a photo that talks. Nice to meet you."
	@echo "the avatar is in out/hero/ (avatar.json lists every file); out/hero_preview.mp4 shows it speaking"
	@echo "live: $(BIN)/avatarkit serve --avatars out   then open http://127.0.0.1:8000/?avatar=hero"

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/build.py
	$(BIN)/python benchmarks/idle.py
	$(BIN)/python benchmarks/turns.py
	$(BIN)/python benchmarks/open_mouth.py
	$(BIN)/python benchmarks/visemes_accuracy.py
	$(BIN)/python benchmarks/preview.py
	$(BIN)/python benchmarks/serve.py
	$(BIN)/python benchmarks/audio_live.py

clean:
	rm -rf out .pytest_cache
