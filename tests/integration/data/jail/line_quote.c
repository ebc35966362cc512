/* #line makes gcc quote "source lines" from another file in its diagnostics. */
#line 1 "@PATH@"
kml_no_such_type kml_quote_me;
