kiln_fuzzer(llb_decode LIBS kiln_llb)
