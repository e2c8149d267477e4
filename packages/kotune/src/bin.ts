#!/usr/bin/env node
/** The `kotune` command of the installed package (in the repository, `bin/kotune.js` runs it from source). */
import '@kotune/cli/main';
