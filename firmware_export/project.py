"""The ready-to-build output folder: Arduino library layout, Makefile, CMakeLists.txt, example, README."""

from __future__ import annotations

import numpy as np

from firmware_export.targets import Target


def c_bytes(values: np.ndarray) -> str:
    vals = np.asarray(values, np.int64).ravel().tolist()
    return ",\n  ".join(", ".join(str(v) for v in vals[i:i + 24]) for i in range(0, len(vals), 24))


def sample_header(prefix: str, inputs: np.ndarray, expected: np.ndarray) -> str:
    up = prefix.upper()
    return "\n".join([
        f"/* A sample input for {prefix} and the output LiteRT (reference kernels) gives for it. */",
        f"#ifndef {up}_SAMPLE_H", f"#define {up}_SAMPLE_H", '#include <stdint.h>', f'#include "{prefix}.h"',
        f"static const {up}_INPUT_T {prefix}_sample_input[{up}_INPUT_SIZE] = {{\n  {c_bytes(inputs[0])}\n}};",
        f"static const {up}_OUTPUT_T {prefix}_sample_expected[{up}_OUTPUT_SIZE] = {{\n  {c_bytes(expected[0])}\n}};",
        "#endif", ""])


def verify_header(inputs: np.ndarray, expected: np.ndarray) -> str:
    n = len(inputs)
    rows_in = ",\n".join("  {" + c_bytes(r) + "}" for r in inputs)
    rows_out = ",\n".join("  {" + c_bytes(r) + "}" for r in expected)
    return "\n".join([
        "/* Inputs compiled into the verification firmware and LiteRT's outputs for them. */",
        "#ifndef EMBER_VERIFY_DATA_H", "#define EMBER_VERIFY_DATA_H", "#include <stdint.h>",
        f"#define EMBER_VERIFY_COUNT {n}",
        f"static const EMBER_IN_T ember_verify_inputs[{n}][EMBER_IN_SIZE] = {{\n{rows_in}\n}};",
        f"static const EMBER_OUT_T ember_verify_expected[{n}][EMBER_OUT_SIZE] = {{\n{rows_out}\n}};",
        "#endif", ""])


def main_c(prefix: str) -> str:
    up = prefix.upper()
    return f"""/* Example: run {prefix} on the compiled-in sample input and print the quantized output. */
#include <stdio.h>
#include "{prefix}.h"
#include "{prefix}_sample.h"

int main(void) {{
  static {up}_OUTPUT_T out[{up}_OUTPUT_SIZE];
  int i, best = 0, same = 1;
  if ({prefix}_invoke({prefix}_sample_input, out) != 0) return 2;
  printf("{prefix} output (quantized, scale %g, zero point %d):", (double){up}_OUTPUT_SCALE, {up}_OUTPUT_ZERO_POINT);
  for (i = 0; i < {up}_OUTPUT_SIZE; ++i) {{
    printf(" %d", out[i]);
    if (out[i] > out[best]) best = i;
    same = same && out[i] == {prefix}_sample_expected[i];
  }}
  printf("\\nargmax %d; %s the LiteRT reference\\n", best, same ? "matches" : "DIFFERS from");
  return same ? 0 : 1;
}}
"""


def arduino_ino(prefix: str) -> str:
    up = prefix.upper()
    return f"""// Arduino example: runs {prefix} once a second on the sample input and prints the output.
#include <{prefix}.h>
#include "{prefix}_sample.h"

static {up}_OUTPUT_T out[{up}_OUTPUT_SIZE];

void setup() {{ Serial.begin(115200); }}

void loop() {{
  unsigned long t0 = micros();
  {prefix}_invoke({prefix}_sample_input, out);
  unsigned long dt = micros() - t0;
  Serial.print("{prefix}:");
  for (int i = 0; i < {up}_OUTPUT_SIZE; ++i) {{ Serial.print(' '); Serial.print(out[i]); }}
  Serial.print("  ("); Serial.print(dt); Serial.println(" us)");
  delay(1000);
}}
"""


def library_properties(prefix: str, target: Target) -> str:
    return "\n".join([f"name={prefix}", "version=0.1.0", "author=Ember firmware_export",
                      "maintainer=Ember developers", f"sentence=int8 model {prefix} as standalone C99 code.",
                      f"paragraph=No interpreter, no malloc; static arena. Exported for {target.name}.",
                      "category=Data Processing", "url=https://github.com/ember-edge/ember",
                      "architectures=*", f"includes={prefix}.h", ""])


def linker_script(target: Target) -> str:
    """The linker script ``make qemu`` uses (a non-ARM target's folder still builds for the M4 machine)."""
    return target.linker_script if target.arm and target.qemu_machine else "mps2.ld"


def _qemu_machine(target: Target) -> str:
    return target.qemu_machine if target.arm and target.qemu_machine else "mps2-an386"


CMSIS_MAKE = """# The model calls Arm CMSIS-NN (github.com/ARM-software/CMSIS-NN): point CMSIS_NN_DIR at it (and
# CMSIS_CORE at CMSIS_6/CMSIS/Core/Include for Arm builds). It is referred to, never copied here.
CMSIS_NN_DIR ?= {cmsis_dir}
CMSIS_CORE ?= $(CMSIS_NN_DIR)/../CMSIS_6/CMSIS/Core/Include
SRC += $(filter-out %_f16.c %_f32.c,$(wildcard $(CMSIS_NN_DIR)/Source/*/*.c))
INC += -I$(CMSIS_NN_DIR)/Include -I$(CMSIS_CORE)
"""


def makefile(prefix: str, target: Target, qemu_machine: str | None, cmsis_dir: str | None = None) -> str:
    arm_flags = " ".join(target.cflags) or "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
    up = prefix.upper()
    ld = linker_script(target)
    defs = (f"-DEMBER_INVOKE={prefix}_invoke -DEMBER_IN_SIZE={up}_INPUT_SIZE -DEMBER_OUT_SIZE={up}_OUTPUT_SIZE "
            f"-DEMBER_IN_T={up}_INPUT_T -DEMBER_OUT_T={up}_OUTPUT_T")
    cmsis = CMSIS_MAKE.format(cmsis_dir=cmsis_dir) if cmsis_dir else ""
    return f"""# {prefix}: build the example on this computer (make run) or for Cortex-M under QEMU (make qemu).
CC ?= cc
CFLAGS ?= -std=c99 -O2 -Wall -Wextra
SRC := src/{prefix}.c src/ember_nn.c
INC := -Isrc
{cmsis}ARM_CC ?= arm-none-eabi-gcc
ARM_FLAGS ?= {arm_flags}
QEMU_MACHINE ?= {qemu_machine or 'mps2-an386'}

.PHONY: all run lib qemu size clean
all: demo lib

demo: main.c $(SRC) src/{prefix}.h examples/{prefix}_demo/{prefix}_sample.h
\t$(CC) $(CFLAGS) $(INC) -Iexamples/{prefix}_demo main.c $(SRC) -o $@

run: demo
\t./demo

lib: lib{prefix}.a
lib{prefix}.a: $(SRC)
\tmkdir -p obj && cd obj && $(CC) $(CFLAGS) $(addprefix -I,$(abspath $(patsubst -I%,%,$(INC)))) -c $(abspath $(SRC))
\t$(AR) rcs $@ obj/*.o

verify.elf: $(SRC) mcu/startup.c mcu/verify_main.c mcu/ember_verify_data.h mcu/{ld}
\t$(ARM_CC) $(ARM_FLAGS) -std=c99 -Os -ffreestanding -nostdlib -Wl,--gc-sections $(INC) -Imcu \\
\t  -include src/{prefix}.h {defs} -T mcu/{ld} $(SRC) mcu/startup.c mcu/verify_main.c -lgcc -o $@

qemu: verify.elf
\tqemu-system-arm -M $(QEMU_MACHINE) -nographic -monitor none -serial none \\
\t  -semihosting-config enable=on,target=native -kernel verify.elf

size: verify.elf
\tarm-none-eabi-size verify.elf

clean:
\trm -rf demo verify.elf lib{prefix}.a obj
"""


CMSIS_CMAKE = """# The model calls Arm CMSIS-NN: -DCMSIS_NN_DIR=... (referred to, never copied here). Zephyr's
# cmsis-nn module or your SDK's copy can provide the target instead: then set CMSIS_NN_TARGET.
set(CMSIS_NN_DIR "{cmsis_dir}" CACHE PATH "Arm CMSIS-NN folder (Include/, Source/)")
set(CMSIS_NN_TARGET "" CACHE STRING "an existing CMSIS-NN library target to link instead")
"""
CMSIS_CMAKE_LINK = """if(CMSIS_NN_TARGET)
  target_link_libraries({prefix} PUBLIC ${{CMSIS_NN_TARGET}})
else()
  file(GLOB CMSIS_NN_SRC ${{CMSIS_NN_DIR}}/Source/*/*.c)
  list(FILTER CMSIS_NN_SRC EXCLUDE REGEX "_f(16|32)\\.c$")
  target_sources({prefix} PRIVATE ${{CMSIS_NN_SRC}})
  target_include_directories({prefix} PUBLIC ${{CMSIS_NN_DIR}}/Include
                             ${{CMSIS_NN_DIR}}/../CMSIS_6/CMSIS/Core/Include)
endif()
"""


def cmakelists(prefix: str, cmsis_dir: str | None = None) -> str:
    head = CMSIS_CMAKE.format(cmsis_dir=cmsis_dir) if cmsis_dir else ""
    link = CMSIS_CMAKE_LINK.format(prefix=prefix) if cmsis_dir else ""
    return f"""# {prefix} as a CMake component (plain CMake, ESP-IDF or Zephyr application sources).
cmake_minimum_required(VERSION 3.13)
{head}
if(ESP_PLATFORM)
  idf_component_register(SRCS src/{prefix}.c src/ember_nn.c INCLUDE_DIRS src)
  return()
endif()
project({prefix} C)
add_library({prefix} STATIC src/{prefix}.c src/ember_nn.c)
target_include_directories({prefix} PUBLIC src)
set_target_properties({prefix} PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON)
{link}if(NOT CMAKE_CROSSCOMPILING)
  add_executable({prefix}_demo main.c)
  target_include_directories({prefix}_demo PRIVATE examples/{prefix}_demo)
  target_link_libraries({prefix}_demo {prefix})
endif()
"""


def readme(prefix: str, target: Target, fp: dict) -> str:
    up = prefix.upper()
    layers = "\n".join(f"| {ly['index']} | {ly['op']} | {'x'.join(map(str, ly['output_shape']))} | "
                       f"{ly['weight_bytes']} | {ly['arena_live_bytes']} | {ly['macs']} |" for ly in fp["layers"])
    return f"""# {prefix}: int8 model for microcontrollers

Exported by Ember (`ember export-c`) for **{target.name}** ({target.example}).
Two independent outputs:

* `src/` — standalone C99 inference (no interpreter, no malloc, one static arena of
  {fp['arena_bytes']} bytes). API in `src/{prefix}.h`:
  `int {prefix}_invoke(const int8_t *input, int8_t *output);` with `{up}_INPUT_SHAPE`,
  `{up}_INPUT_SCALE`, `{up}_INPUT_ZERO_POINT` (and the same for the output). Quantize a float `x` as
  `q = round(x / SCALE) + ZERO_POINT`, clamped to [-128, 127]; results are bit-exact with LiteRT's
  reference int8 kernels.
* `tflm/model_data.h/.c` — the same model as a TensorFlow Lite Micro flatbuffer array with its op
  resolver macro (`{up}_TFLM_REGISTER_OPS`) and arena size (`{up}_TFLM_ARENA_BYTES`).

## Footprint ({target.name})

Flash {fp['flash_bytes']} B (weights {fp['weight_bytes']} B), RAM {fp['ram_bytes']} B (arena
{fp['arena_bytes']} B + stack {fp['stack_bytes']} B + input/output {fp['io_bytes']} B);
budget {fp['target_flash_bytes']} B flash / {fp['target_ram_bytes']} B RAM.
{'Measured with arm-none-eabi-size on a ' + fp['measured_on'] + ' build.' if fp['measured'] else
 'Estimated (arm-none-eabi-gcc was not available at export time).'}

| op | kind | output | weight bytes | arena bytes live | MACs |
|---|---|---|---|---|---|
{layers}

## Build and flash

* **On this computer**: `make run` builds `main.c` (runs the compiled-in sample input and prints the
  output) with your C compiler; `make lib` builds `lib{prefix}.a`.
* **QEMU (Cortex-M)**: `make qemu` builds `mcu/verify_main.c` with `arm-none-eabi-gcc` (startup and
  linker script in `mcu/`) and runs it under `qemu-system-arm -M {_qemu_machine(target)}` with semihosting; it
  prints `ember-verify: N/N ok` and exits 0 when every output matches LiteRT.
* **Arduino IDE / arduino-cli**: this folder is an Arduino library (`library.properties`, `src/`).
  Copy it into `~/Arduino/libraries/{prefix}/` (or *Sketch → Include Library → Add .ZIP Library*),
  open *File → Examples → {prefix} → {prefix}_demo*, pick your board, Upload. With the CLI:
  `arduino-cli compile --fqbn BOARD --library . examples/{prefix}_demo && arduino-cli upload -p PORT --fqbn BOARD examples/{prefix}_demo`.
* **PlatformIO**: put this folder in your project's `lib/` directory (PlatformIO reads
  `library.properties`), `#include <{prefix}.h>`, then `pio run -t upload`.
* **STM32CubeIDE**: copy `src/` into your project (e.g. `Middlewares/{prefix}`), add it to the include
  paths (*Properties → C/C++ Build → Settings → Include paths*), call `{prefix}_invoke()` from `main.c`,
  build and flash with *Run → Debug*.
* **Zephyr (`west`)**: add the sources to your application's `CMakeLists.txt`:
  `target_sources(app PRIVATE path/to/{prefix}/src/{prefix}.c path/to/{prefix}/src/ember_nn.c)` and
  `target_include_directories(app PRIVATE path/to/{prefix}/src)`, then `west build -b BOARD app` and
  `west flash`.
* **ESP-IDF / CMake**: `CMakeLists.txt` registers an ESP-IDF component when `ESP_PLATFORM` is set
  (put the folder under `components/`), otherwise builds a static library and the demo.
* **TensorFlow Lite Micro**: compile `tflm/model_data.c` into your TFLM application and see the
  comment in `tflm/model_data.h` for the resolver and arena.

{_cmsis_readme(prefix) if fp.get('kernels') == 'cmsis-nn' else ''}`footprint.json` holds these figures in machine-readable form.
"""


def _cmsis_readme(prefix: str) -> str:
    return f"""## CMSIS-NN

`src/{prefix}.c` calls Arm's CMSIS-NN kernels (`arm_nnfunctions.h`) for convolutions, depthwise
convolutions, pooling and softmax, with their scratch buffers planned inside the static arena. CMSIS-NN
is **not** included: `make CMSIS_NN_DIR=/path/to/CMSIS-NN` (`cmake -DCMSIS_NN_DIR=...`, or
`-DCMSIS_NN_TARGET=` an existing library target such as Zephyr's cmsis-nn module); Arm builds also
need the CMSIS core headers (`CMSIS_CORE`, CMSIS_6/CMSIS/Core/Include). Arduino and PlatformIO: add
CMSIS-NN as a library of your board's framework (e.g. the `Arm CMSIS-NN` / Arduino_TensorFlowLite
packages carry it). Outputs stay bit-exact with LiteRT's reference kernels (checked at export time).

"""
