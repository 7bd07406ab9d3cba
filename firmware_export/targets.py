"""Microcontroller target profiles: memory budgets, compiler flags and the QEMU machine that emulates them."""

from __future__ import annotations

from dataclasses import dataclass

from sdk.errors import ExportError

KIB = 1024


@dataclass(frozen=True)
class Target:
    name: str
    flash_bytes: int
    ram_bytes: int
    cflags: tuple[str, ...]  # arm-none-eabi-gcc flags; empty for non-ARM targets
    qemu_machine: str | None  # qemu-system-arm -M value that runs this code, or None
    example: str
    linker_script: str = "mps2.ld"  # in firmware_export/mcu/, matching qemu_machine's memory map

    @property
    def arm(self) -> bool:
        return bool(self.cflags)


TARGETS: dict[str, Target] = {
    "cortex-m0plus": Target("cortex-m0plus", 256 * KIB, 32 * KIB,
                            ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
                            "microbit", "SAMD21 / STM32G0 class (256 KiB flash, 32 KiB RAM)",
                            "microbit.ld"),  # qemu's micro:bit is a Cortex-M0: the same ARMv6-M code
    "cortex-m4": Target("cortex-m4", 1024 * KIB, 256 * KIB,
                        ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
                        "mps2-an386", "nRF52840 / STM32F4 class (1 MiB flash, 256 KiB RAM)"),
    "cortex-m7": Target("cortex-m7", 2048 * KIB, 512 * KIB,
                        ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
                        "mps2-an500", "STM32F7 / i.MX RT class (2 MiB flash, 512 KiB RAM)"),
    "cortex-m33": Target("cortex-m33", 1024 * KIB, 256 * KIB,
                         ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
                         "mps2-an505", "STM32U5 / nRF5340 / RP2350 class (1 MiB flash, 256 KiB RAM)",
                         "mps2_an505.ld"),
    "cortex-m55": Target("cortex-m55", 2048 * KIB, 512 * KIB,
                         ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),  # -mcpu alone: MVE (Helium) + FPU
                         "mps3-an547", "Alif Ensemble / Infineon PSoC Edge class, Helium (2 MiB flash, 512 KiB RAM)",
                         "mps3_an547.ld"),
    "esp32-s3": Target("esp32-s3", 3 * 1024 * KIB, 320 * KIB, (), None,
                       "ESP32-S3 (3 MiB app partition, ~320 KiB free SRAM; build with ESP-IDF/Arduino)"),
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ExportError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}") from None
