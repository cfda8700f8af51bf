# The op oracle's engine, shared by the gtest binary (tests/ops/CMakeLists.txt) and the plain CLI that the
# GPU script runs (src/backends/cuda/standalone).
set(PUNICA_LORA_ORACLE_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/lora_oracle.cpp
    ${CMAKE_CURRENT_LIST_DIR}/lora_oracle_cases.cpp)
