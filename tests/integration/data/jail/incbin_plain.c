/* The assembler embeds any file into the object. */
asm(".pushsection .rodata\n"
    "kml_blob: .incbin \"@PATH@\"\n"
    ".popsection\n");
