/* The reported attack: .irp assembles ".incbin" from pieces after every scanner and the
 * assembler guard have looked. */
asm(".pushsection .rodata\n"
    ".irp kml_piece, inc\n"
    ".\\kml_piece\\()bin \"@PATH@\"\n"
    ".endr\n"
    ".popsection\n");
