set(PUNICA_BENCH_LORA_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/bench_lora.cpp
    ${CMAKE_CURRENT_LIST_DIR}/bench_workloads.cpp
    ${CMAKE_CURRENT_LIST_DIR}/bench_device.cu)
