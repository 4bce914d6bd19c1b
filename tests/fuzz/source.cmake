kiln_fuzzer(ignore LIBS kiln_source)
kiln_fuzzer(tar LIBS kiln_source)
