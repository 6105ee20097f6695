# Small helpers shared by every component: warnings per target, one way to
# declare a library and one way to declare a test.

function(imgq_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                         -Wnon-virtual-dtor -Wconversion -Wno-sign-conversion
                         -Wno-missing-field-initializers)
endfunction()

# imgq_add_library(NAME component SOURCES ... DEPS ...)
# Creates imgq_<component> with the alias imgq::<component>; public headers
# live in <component>/include/imgq/<component>/.
function(imgq_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(imgq_${name} STATIC ${ARG_SOURCES})
  add_library(imgq::${name} ALIAS imgq_${name})
  target_include_directories(imgq_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                             PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(imgq_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  imgq_warnings(imgq_${name})
endfunction()

# imgq_add_test(NAME name SOURCES ... DEPS ... [MPI_RANKS 1 2 3 4] [TIMEOUT s])
# A GoogleTest binary registered with ctest; with MPI_RANKS it is registered
# once per rank count and run through mpiexec.
function(imgq_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;MPI_RANKS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  target_compile_definitions(${name} PRIVATE
    IMGQ_SAMPLE_DATA_DIR="/usr/share/doc/opencv-doc/examples/data"
    IMGQ_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}"
    IMGQ_MPIEXEC="${MPIEXEC_EXECUTABLE}")
  imgq_warnings(${name})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(ARG_MPI_RANKS)
    foreach(n IN LISTS ARG_MPI_RANKS)
      add_test(NAME ${name}.ranks${n}
               COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${n} $<TARGET_FILE:${name}>)
      set_tests_properties(${name}.ranks${n} PROPERTIES TIMEOUT ${ARG_TIMEOUT}
                           LABELS "mpi;${ARG_LABELS}" PROCESSORS ${n})
    endforeach()
  else()
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
  endif()
endfunction()
